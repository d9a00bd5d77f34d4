//! `worker tasks upload` and `worker proxies upload`: one item per line.
//! Blank lines and duplicates are skipped; a bad line (not UTF-8, a NUL, an
//! unknown scheme, a CSS selector that does not parse, ...) is reported
//! with its number and skipped; the good ones are stored (an item already
//! stored is left as it is). The caller exits 1 when any line was bad.
//!
//! Task files are streamed: read line by line and stored in chunks, so
//! memory stays flat whatever the file's size (duplicates are told apart
//! within a chunk; across chunks the database skips them as already
//! stored). A chunk Postgres refuses is written by halves
//! (`db::isolate`), and the lines it refuses are named like the others.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use db::PgPool;
use domain::fleet::{ProxyUrl, TaskKind};

use crate::page::TaskParams;

/// Task lines stored per statement.
const CHUNK: usize = 5000;

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uploaded {
    pub lines: usize,
    pub stored: u64,
    pub already_stored: u64,
    pub duplicates: usize,
    /// (line number, why)
    pub bad: Vec<(usize, String)>,
}

/// Parses the good lines of `text` with `parse`, naming the bad ones.
pub fn parse_lines(
    text: &str,
    parse: impl Fn(&str) -> Result<String, String>,
) -> (Vec<String>, Uploaded) {
    parse_lines_by(text, parse, String::clone)
}

/// `parse_lines` for items that are more than their key (a task with its
/// parameters): duplicates are told apart by `key`.
pub fn parse_lines_by<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Uploaded) {
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut report = Uploaded::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        report.lines += 1;
        match parse(line) {
            Ok(item) if seen.insert(key(&item)) => good.push(item),
            Ok(_) => report.duplicates += 1,
            Err(why) => report.bad.push((index + 1, why)),
        }
    }
    (good, report)
}

/// A task line of `kind`: an http(s) URL for `fetch_url`, a listing id for
/// `offer_refresh`.
pub fn parse_task(kind: TaskKind, line: &str) -> Result<String, String> {
    if line.contains('\0') {
        return Err("a NUL byte in the line".into());
    }
    match kind {
        TaskKind::FetchUrl | TaskKind::RenderUrl => {
            let url = url::Url::parse(line).map_err(|e| format!("not a URL ({e}): {line:?}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!(
                    "not an http(s) URL (scheme {:?}): {line:?}",
                    url.scheme()
                ));
            }
            Ok(url.to_string())
        }
        TaskKind::OfferRefresh => {
            let ok = line.len() <= 64
                && line
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if ok {
                Ok(line.to_owned())
            } else {
                Err(format!("not a listing inner_id: {line:?}"))
            }
        }
    }
}

/// A proxy line: `host:port`, `host:port:user:pass` or
/// `scheme://[user:pass@]host:port` (http or https). Stored normalised as
/// a URL; a refused line is quoted with its credentials masked.
pub fn parse_proxy(line: &str) -> Result<String, String> {
    ProxyUrl::parse(line)
        .map(|p| p.stored())
        .map_err(|e| e.to_string())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))
}

fn report(what: &str, path: &Path, up: &Uploaded) {
    for (line, why) in &up.bad {
        tracing::error!("{}: line {line}: {why}; skipped", path.display());
    }
    tracing::info!(
        "Uploaded {} new {what}(s) from {} ({} already stored, {} duplicate line(s), {} bad line(s))",
        up.stored,
        path.display(),
        up.already_stored,
        up.duplicates,
        up.bad.len()
    );
}

/// Exit 1 (an error) when any line was bad; each was already reported.
pub fn fail_on_bad(up: Uploaded) -> anyhow::Result<()> {
    match up.bad.len() {
        0 => Ok(()),
        n => anyhow::bail!("{n} bad line(s) skipped (named above); the good ones are stored"),
    }
}

pub async fn tasks(pool: &PgPool, path: &Path, kind: TaskKind) -> anyhow::Result<Uploaded> {
    tasks_with(pool, path, kind, &TaskParams::default(), None).await
}

/// A task line with parameters: a plain target takes `defaults`; a URL task
/// may also be a JSON line `{"url": …, "wait_for": …, "extract": …,
/// "screenshot": true}`, whose keys override the defaults. `profiles`, when
/// given, are the extraction profiles a line may name.
pub fn parse_task_line(
    kind: TaskKind,
    line: &str,
    defaults: &TaskParams,
    profiles: Option<&[String]>,
) -> Result<(String, TaskParams), String> {
    if line.contains('\0') {
        return Err("a NUL byte in the line".into());
    }
    let listing = kind == TaskKind::OfferRefresh;
    let (target, params) = if line.starts_with('{') && !listing {
        #[derive(serde::Deserialize)]
        struct Line {
            url: String,
            #[serde(flatten)]
            params: serde_json::Map<String, serde_json::Value>,
        }
        let parsed: Line =
            serde_json::from_str(line).map_err(|e| format!("not a task JSON line ({e})"))?;
        let mut merged = match defaults.to_json() {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        merged.extend(parsed.params);
        let params = TaskParams::from_json(&serde_json::Value::Object(merged))
            .map_err(|e| format!("{e:#}"))?;
        (parse_task(kind, &parsed.url)?, params)
    } else {
        (parse_task(kind, line)?, defaults.clone())
    };
    // Postgres' text and jsonb refuse NUL: a `\u0000` escape is no better.
    if params.to_json().to_string().contains("\\u0000") {
        return Err("a NUL (\\u0000) in the line".into());
    }
    if let Some(css) = &params.wait_for {
        scraper::Selector::parse(css)
            .map_err(|e| format!("wait_for {css:?} is not a CSS selector ({e})"))?;
    }
    if let (Some(name), Some(known)) = (&params.extract, profiles) {
        if !known.contains(name) {
            return Err(format!(
                "no extraction profile worker.extract.{name} (known: {})",
                known.join(", ")
            ));
        }
    }
    if listing && params != TaskParams::default() {
        return Err("offer_refresh tasks take no parameters".into());
    }
    Ok((target, params))
}

/// `worker tasks upload [--extract P] [--wait-for CSS] [--screenshot]`,
/// streamed (see the module note).
pub async fn tasks_with(
    pool: &PgPool,
    path: &Path,
    kind: TaskKind,
    defaults: &TaskParams,
    profiles: Option<&[String]>,
) -> anyhow::Result<Uploaded> {
    let file =
        std::fs::File::open(path).with_context(|| format!("Failed to read {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut up = Uploaded::default();
    let mut chunk = Chunk::default();
    let mut raw = Vec::new();
    let mut number = 0;
    loop {
        raw.clear();
        let read = reader
            .read_until(b'\n', &mut raw)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        let Ok(text) = std::str::from_utf8(&raw) else {
            up.lines += 1;
            up.bad.push((number, "not UTF-8 text".into()));
            continue;
        };
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        up.lines += 1;
        match parse_task_line(kind, line, defaults, profiles) {
            Ok((target, params)) if chunk.seen.insert(target.clone()) => {
                chunk.items.push(Line {
                    number,
                    target,
                    params: params.to_json(),
                });
            }
            Ok(_) => up.duplicates += 1,
            Err(why) => up.bad.push((number, why)),
        }
        if chunk.items.len() >= CHUNK {
            store(pool, kind, &mut chunk, &mut up).await?;
        }
    }
    store(pool, kind, &mut chunk, &mut up).await?;
    up.bad.sort_by_key(|(line, _)| *line);
    // The tasks are stored either way: statistics only make claims cheaper
    // until autovacuum refreshes them, so a failure here is not the upload's.
    if up.stored > 0 {
        if let Err(err) = db::tasks::refresh_planner_stats(pool).await {
            tracing::warn!(
                "Stored the tasks, but could not refresh the planner's statistics of tasks (claims may be slow until autovacuum does): {err}"
            );
        }
    }
    report("task", path, &up);
    Ok(up)
}

/// A good task line waiting for its chunk's statement.
struct Line {
    number: usize,
    target: String,
    params: serde_json::Value,
}

#[derive(Default)]
struct Chunk {
    items: Vec<Line>,
    /// Targets of this chunk (duplicates within it are counted).
    seen: HashSet<String>,
}

/// Stores a chunk in one statement; a chunk Postgres refuses goes in by
/// halves and the refused lines are named.
async fn store(
    pool: &PgPool,
    kind: TaskKind,
    chunk: &mut Chunk,
    up: &mut Uploaded,
) -> anyhow::Result<()> {
    if chunk.items.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await.context("Failed to store tasks")?;
    let done = db::isolate::write_isolating(&mut conn, &chunk.items, |conn, lines| {
        Box::pin(async move {
            let targets: Vec<String> = lines.iter().map(|l| l.target.clone()).collect();
            let params: Vec<serde_json::Value> = lines.iter().map(|l| l.params.clone()).collect();
            db::tasks::insert_with_params(conn, kind, &targets, &params).await
        })
    })
    .await
    .context("Failed to store tasks")?;
    let stored: u64 = done.written.iter().sum();
    up.stored += stored;
    up.already_stored += (chunk.items.len() - done.refused.len()) as u64 - stored;
    for (index, why) in done.refused {
        up.bad.push((chunk.items[index].number, why));
    }
    chunk.items.clear();
    chunk.seen.clear();
    Ok(())
}

pub async fn proxies(pool: &PgPool, path: &Path) -> anyhow::Result<Uploaded> {
    let (good, mut up) = parse_lines(&read(path)?, parse_proxy);
    for chunk in good.chunks(5000) {
        up.stored += db::proxies::insert(pool, chunk)
            .await
            .context("Failed to store proxies")?;
    }
    up.already_stored = good.len() as u64 - up.stored;
    report("proxy", path, &up);
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_proxy_line_shapes_are_normalised_to_urls() {
        assert_eq!(
            parse_proxy("10.0.0.1:3128").unwrap(),
            "http://10.0.0.1:3128"
        );
        assert_eq!(
            parse_proxy("proxy.example.com:8080:bob:s3cret!").unwrap(),
            "http://bob:s3cret%21@proxy.example.com:8080"
        );
        assert_eq!(
            parse_proxy("https://bob:pw@p.example.com:8443").unwrap(),
            "https://bob:pw@p.example.com:8443"
        );
        for bad in [
            "10.0.0.1",
            "host:0",
            "host:99999",
            "a b:80",
            "h:1:u",
            "ftp://h:21",
            "http://h:80/x",
        ] {
            assert!(parse_proxy(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn blank_lines_and_duplicates_are_skipped_and_bad_lines_named_by_number() {
        let text = "http://a.test/1\n\n  http://a.test/1 \nnot a url\nhttp://a.test/2\n";
        let (good, report) = parse_lines(text, |l| parse_task(TaskKind::FetchUrl, l));
        assert_eq!(good, vec!["http://a.test/1", "http://a.test/2"]);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.bad.len(), 1);
        assert_eq!(report.bad[0].0, 4);
    }

    #[test]
    fn a_url_task_line_is_a_plain_url_or_a_json_line_overriding_the_flags() {
        let defaults = TaskParams {
            extract: Some("listing".into()),
            ..TaskParams::default()
        };
        let known = vec!["listing".to_owned(), "other".to_owned()];
        let (target, params) = parse_task_line(
            TaskKind::RenderUrl,
            "http://a.test/1",
            &defaults,
            Some(&known),
        )
        .unwrap();
        assert_eq!((target.as_str(), &params), ("http://a.test/1", &defaults));
        let (_, params) = parse_task_line(
            TaskKind::RenderUrl,
            r#"{"url": "http://a.test/2", "wait_for": ".listing", "extract": "other", "screenshot": true}"#,
            &defaults,
            Some(&known),
        )
        .unwrap();
        assert_eq!(
            params,
            TaskParams {
                wait_for: Some(".listing".into()),
                extract: Some("other".into()),
                screenshot: true
            }
        );
        for bad in [
            r#"{"url": "http://a.test/3", "extract": "nope"}"#,
            r#"{"url": "http://a.test/3", "colour": "red"}"#,
            r#"{"wait_for": ".x"}"#,
            r#"{"url": "ftp://a.test/3"}"#,
        ] {
            assert!(
                parse_task_line(TaskKind::RenderUrl, bad, &defaults, Some(&known)).is_err(),
                "{bad} should be refused"
            );
        }
        let (good, report) = parse_lines_by(
            "http://a.test/1\n{\"url\": \"http://a.test/1\"}\n",
            |l| parse_task_line(TaskKind::FetchUrl, l, &TaskParams::default(), None),
            |(t, _)| t.clone(),
        );
        assert_eq!((good.len(), report.duplicates), (1, 1));
    }

    #[test]
    fn a_nul_an_unknown_scheme_and_a_bad_selector_are_each_named() {
        let d = TaskParams::default();
        let nul = parse_task_line(
            TaskKind::FetchUrl,
            r#"{"url": "http://a.test/\u0000x"}"#,
            &d,
            None,
        );
        assert!(nul.unwrap_err().contains("NUL"));
        let raw_nul = parse_task_line(TaskKind::FetchUrl, "http://a.test/\0", &d, None);
        assert!(raw_nul.unwrap_err().contains("NUL"));
        let scheme = parse_task_line(TaskKind::FetchUrl, "file:///etc/passwd", &d, None);
        assert!(scheme.unwrap_err().contains("\"file\""));
        let css = parse_task_line(
            TaskKind::RenderUrl,
            r#"{"url": "http://a.test/1", "wait_for": "div[[["}"#,
            &d,
            None,
        );
        assert!(css.unwrap_err().contains("not a CSS selector"));
        assert!(parse_task_line(
            TaskKind::RenderUrl,
            r#"{"url": "http://a.test/1", "wait_for": ".listing > a"}"#,
            &d,
            None
        )
        .is_ok());
    }

    #[test]
    fn an_offer_refresh_line_is_a_plain_listing_id() {
        assert_eq!(
            parse_task(TaskKind::OfferRefresh, "abc-123").unwrap(),
            "abc-123"
        );
        assert!(parse_task(TaskKind::OfferRefresh, "a b").is_err());
    }
}
