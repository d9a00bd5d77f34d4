//! The `[INFO] message key=value` line format.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `[INFO] message field=value`, optionally preceded by an RFC 3339 UTC time
/// (files carry the time; `docker compose logs -t` adds it for stdout).
#[derive(Debug, Clone, Copy)]
pub struct LevelPrefixFormat {
    with_time: bool,
}

impl LevelPrefixFormat {
    pub fn with_time() -> Self {
        Self { with_time: true }
    }

    pub fn without_time() -> Self {
        Self { with_time: false }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for LevelPrefixFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.with_time {
            write!(
                writer,
                "{} ",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )?;
        }
        write!(writer, "[{}] ", level_name(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        // Span fields (e.g. inner_id) after the message, for context.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, " {fields}")?;
                    }
                }
            }
        }
        writeln!(writer)
    }
}
