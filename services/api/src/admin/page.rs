//! `/status` as one self-contained HTML page: inline style, no script, no
//! font or image from anywhere, so it works offline and behind a firewall.
//! It reloads itself every 30 s (`<meta http-equiv="refresh">`).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::model::*;
use super::rules::human;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#1d2530;background:#f4f6f8}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#5a6470;margin-bottom:14px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
section{background:#fff;border-radius:6px;padding:10px 14px;border-left:8px solid #999}
section.ok{border-color:#2e8540}section.warn{border-color:#e0a800}section.fail{border-color:#c62828}
h2{font-size:16px;margin:0 0 6px;display:flex;justify-content:space-between;align-items:center}
.state{font-size:12px;font-weight:700;padding:2px 8px;border-radius:10px;color:#fff;text-transform:uppercase}
.state.ok{background:#2e8540}.state.warn{background:#a86f00}.state.fail{background:#c62828}
table{border-collapse:collapse;width:100%}td,th{padding:2px 6px 2px 0;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
ul.why{margin:4px 0 6px;padding-left:18px;color:#7a1c1c}
.ops{margin-top:14px;background:#fff;border-radius:6px;padding:10px 14px}
.ops td{border-top:1px solid #e5e8eb;font-size:13px}
.err{color:#c62828;font-weight:700}
";

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or("never".to_owned(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

fn ago(seconds: Option<f64>) -> String {
    seconds.map_or("-".to_owned(), |s| {
        format!(
            "{} ago",
            human(std::time::Duration::from_secs_f64(s.max(0.0)))
        )
    })
}

fn num(n: impl Into<i128>) -> String {
    let digits = n.into().to_string();
    let (sign, digits) = digits.split_at(usize::from(digits.starts_with('-')));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// One section: its title, state (colour and word), reasons and rows.
fn section(
    out: &mut String,
    id: &str,
    title: &str,
    state: State,
    reasons: &[String],
    rows: &[(&str, String)],
) {
    let s = state.as_str();
    let _ = write!(
        out,
        "<section id=\"{id}\" class=\"{s}\" data-state=\"{s}\"><h2>{title} <span class=\"state {s}\">{s}</span></h2>"
    );
    if !reasons.is_empty() {
        out.push_str("<ul class=\"why\">");
        for r in reasons {
            let _ = write!(out, "<li>{}</li>", escape(r));
        }
        out.push_str("</ul>");
    }
    out.push_str("<table>");
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td class=\"n\">{value}</td></tr>");
    }
    out.push_str("</table></section>");
}

pub fn render(status: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let overall = status.state.as_str();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>carfeed status: {overall}</title><style>{STYLE}</style></head><body>\
         <h1>carfeed status <span class=\"state {overall}\" id=\"overall\">{overall}</span></h1>\
         <div class=\"sub\">Figures read {} (cached a few seconds); this page reloads every 30 s. \
         Also as <a href=\"status.json\">status.json</a> and <a href=\"metrics\">metrics</a>.</div>\
         <div class=\"grid\">",
        time(Some(status.generated_at))
    );

    let l = &status.initial_load;
    let progress = match (l.started, l.finished) {
        (false, _) => "not started",
        (true, false) => "running",
        (true, true) => "finished",
    };
    section(
        &mut out,
        "initial_load",
        "Initial load",
        l.state,
        &l.reasons,
        &[
            ("state", progress.to_owned()),
            ("pages done", num(l.pages_done)),
            ("pages failed", num(l.pages_failed)),
            ("pages missing", num(l.pages_missing)),
            ("listings", num(l.listings)),
            ("started", time(l.started_at)),
            ("finished", time(l.finished_at)),
        ],
    );

    let d = &status.daily;
    let last_run = d.last_run.as_ref().map_or("none".to_owned(), |r| {
        format!(
            "{} {} — {}",
            r.started_at.format("%Y-%m-%d %H:%M"),
            escape(&r.status),
            escape(&r.details)
        )
    });
    section(
        &mut out,
        "daily",
        "Daily update",
        d.state,
        &d.reasons,
        &[
            (
                "last successful date",
                d.last_successful_date
                    .map_or("never".to_owned(), |d| d.to_string()),
            ),
            ("days behind", d.days_behind.map_or("-".to_owned(), num)),
            ("last run", last_run),
        ],
    );

    let n = &status.normalizer;
    section(
        &mut out,
        "normalizer",
        "Normaliser",
        n.state,
        &n.reasons,
        &[
            ("waiting", num(n.waiting)),
            ("with errors", num(n.errors)),
            ("normalised in the last hour", num(n.processed_last_hour)),
            ("oldest waiting", ago(n.oldest_waiting_seconds)),
        ],
    );

    let r = &status.rejected;
    let mut newest = String::new();
    for item in &r.newest {
        let _ = write!(
            newest,
            "<div>{} {} {}: {}</div>",
            item.rejected_at.format("%m-%d %H:%M"),
            escape(&item.endpoint),
            escape(item.inner_id.as_deref().unwrap_or("?")),
            escape(&item.reason)
        );
    }
    section(
        &mut out,
        "rejected",
        "Rejected items",
        r.state,
        &r.reasons,
        &[
            ("in rejected_items", num(r.total)),
            ("recent", num(r.recent)),
            (
                "newest reasons",
                if newest.is_empty() {
                    "-".to_owned()
                } else {
                    newest
                },
            ),
        ],
    );

    let f = &status.fleet;
    section(
        &mut out,
        "fleet",
        "Worker fleet",
        f.state,
        &f.reasons,
        &[
            ("workers alive", num(f.workers_alive)),
            ("workers dead", num(f.workers_dead)),
            ("tasks pending", num(f.tasks.pending)),
            ("tasks running", num(f.tasks.running)),
            ("tasks completed", num(f.tasks.completed)),
            ("tasks failed", num(f.tasks.failed)),
            ("proxies free", num(f.proxies.free)),
            ("proxies in use", num(f.proxies.in_use)),
            ("proxies blocked", num(f.proxies.blocked)),
            ("completed in the last hour", num(f.completed_last_hour)),
            ("failed in the last hour", num(f.failed_last_hour)),
        ],
    );

    let s = &status.sync;
    let reachable = match s.target_reachable {
        Some(true) => "yes (last push run OK)",
        Some(false) => "no (last push run failed)",
        None => "unknown (no push run yet)",
    };
    section(
        &mut out,
        "sync",
        "Sync to production",
        s.state,
        &s.reasons,
        &[
            ("last push", time(s.last_push)),
            ("last pull", time(s.last_pull)),
            (
                "rows waiting to be pushed",
                s.waiting.map_or("-".to_owned(), num),
            ),
            ("target reachable", reachable.to_owned()),
        ],
    );

    let a = &status.api;
    section(
        &mut out,
        "api",
        "API",
        a.state,
        &a.reasons,
        &[
            ("requests (last hour)", num(a.requests_last_hour)),
            ("4xx (last hour)", num(a.client_errors_last_hour)),
            ("5xx (last hour)", num(a.server_errors_last_hour)),
            ("active tokens", num(a.active_tokens)),
        ],
    );

    let b = &status.backup;
    section(
        &mut out,
        "backup",
        "Backups",
        b.state,
        &b.reasons,
        &[
            ("newest backup", ago(b.age_seconds)),
            (
                "size",
                b.size_bytes
                    .map_or("-".to_owned(), |n| format!("{} bytes", num(n))),
            ),
            ("file", escape(b.file.as_deref().unwrap_or("-"))),
            (
                "last restore drill",
                format!(
                    "{} {}",
                    ago(b.restore_drill_age_seconds),
                    escape(b.restore_drill_status.as_deref().unwrap_or(""))
                ),
            ),
        ],
    );
    out.push_str("</div>");

    out.push_str("<div class=\"ops\" id=\"operations\"><h2>Last operations</h2><table><tr><th>started</th><th>operation</th><th>status</th><th>seconds</th><th>details</th></tr>");
    for op in &status.operations {
        let class = if op.status == "OK" {
            ""
        } else {
            " class=\"err\""
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td{class}>{}</td><td class=\"n\">{:.1}</td><td>{}</td></tr>",
            op.started_at.format("%Y-%m-%d %H:%M:%S"),
            escape(&op.operation_type),
            escape(&op.status),
            op.duration,
            escape(&op.details)
        );
    }
    out.push_str("</table></div></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(-1000), "-1,000");
        assert_eq!(num(12), "12");
    }
}
