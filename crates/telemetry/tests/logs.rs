//! What the logs look like: `[INFO] message` lines, WARNING spelled out,
//! and daily files under LOG_DIR.

use std::io::Write;
use std::sync::{Arc, Mutex};

use settings::{LogFormat, LogLevel, LogSettings};
use telemetry::LevelPrefixFormat;
use tracing_subscriber::fmt::MakeWriter;

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn text_lines_start_with_the_level_in_brackets() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .event_format(LevelPrefixFormat::without_time())
        .with_writer(buffer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("Starting page 1 loading");
        tracing::warn!(page = 7, "Page failed, retrying");
        tracing::error!("Giving up");
        tracing::debug!("details");
    });
    assert_eq!(
        buffer.text(),
        "[INFO] Starting page 1 loading\n\
         [WARNING] Page failed, retrying page=7\n\
         [ERROR] Giving up\n\
         [DEBUG] details\n"
    );
}

#[test]
fn file_lines_carry_a_utc_timestamp_before_the_level() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .event_format(LevelPrefixFormat::with_time())
        .with_writer(buffer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
    let line = buffer.text();
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
    assert_eq!(rest, "[INFO] hello\n");
}

// The only test in this binary that installs the global subscriber.
#[test]
fn init_with_a_log_dir_writes_a_daily_file_named_after_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        level: LogLevel::Info,
        format: LogFormat::Text,
        dir: Some(dir.path().join("logs")),
        retention_days: 7,
    };
    let guard = telemetry::init("loader", &settings).unwrap();
    tracing::info!("Stored page 3 (20 listings)");
    tracing::debug!("not at info level");
    drop(guard); // flushes the background writer

    let files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(files[0], format!("loader.{today}.log"));
    let text = std::fs::read_to_string(dir.path().join("logs").join(&files[0])).unwrap();
    assert!(
        text.contains("[INFO] Stored page 3 (20 listings)"),
        "{text}"
    );
    assert!(!text.contains("not at info level"), "{text}");
}
