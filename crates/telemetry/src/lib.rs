//! carfeed's logs, set up once per process.
//!
//! Text lines look like `[INFO] Starting page 1 loading` (what `docker compose
//! logs` shows); `log.format: json` prints one JSON object per line for log
//! shippers. With `log.dir` set, the same lines also go to
//! `<dir>/<service>.YYYY-MM-DD.log`, rotated daily, keeping `retention_days`
//! files. Nothing here ever prints a secret: callers never log request URLs
//! or settings' secrets (which redact themselves).

mod format;
pub mod progress;

use anyhow::Context;
use settings::{LogFormat, LogLevel, LogSettings};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use format::LevelPrefixFormat;

/// Keeps the background file writer alive; drop it last, on exit.
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file_writer: Option<WorkerGuard>,
}

/// Installs the process-wide subscriber. `service` names the log files.
/// `RUST_LOG`, when set, refines the level (e.g. `RUST_LOG=info,sqlx=warn`).
pub fn init(service: &str, settings: &LogSettings) -> anyhow::Result<LogGuard> {
    let level = match settings.level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let filter = || {
        EnvFilter::builder()
            .with_default_directive(level.into())
            .from_env_lossy()
            // Library chatter stays out of INFO.
            .add_directive("sqlx=warn".parse().expect("static directive"))
            .add_directive("hyper=warn".parse().expect("static directive"))
            .add_directive("reqwest=warn".parse().expect("static directive"))
    };

    let stdout_layer = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .event_format(LevelPrefixFormat::without_time())
            // Plain text: docker logs and log files show escape codes verbatim.
            .with_ansi(false)
            .with_writer(std::io::stdout)
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stdout)
            .with_filter(filter())
            .boxed(),
    };

    let (file_layer, guard) = match &settings.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create log directory {}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(service)
                .filename_suffix("log")
                .max_log_files(settings.retention_days)
                .build(dir)
                .with_context(|| format!("cannot open log files in {}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = match settings.format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .event_format(LevelPrefixFormat::with_time())
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(filter())
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed(),
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };

    tracing_subscriber::registry()
        .with(stdout_layer)
        .with(file_layer)
        .try_init()
        .context("a log subscriber is already installed")?;
    Ok(LogGuard {
        _file_writer: guard,
    })
}
