//! `worker tasks upload` and `worker proxies upload`: one item per line.
//! Blank lines and duplicates are skipped; a bad line is reported with its
//! number and skipped; the good ones are stored (an item already stored is
//! left as it is). The caller exits 1 when any line was bad.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use db::PgPool;

use crate::page::TaskParams;

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
pub fn parse_task(kind: &str, line: &str) -> Result<String, String> {
    match kind {
        "fetch_url" | "render_url" => {
            let url = url::Url::parse(line).map_err(|e| format!("not a URL ({e}): {line:?}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!("not an http(s) URL: {line:?}"));
            }
            Ok(url.to_string())
        }
        "offer_refresh" => {
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
        other => Err(format!("unknown task kind {other:?}")),
    }
}

/// A proxy line: `host:port`, `host:port:user:pass` or
/// `scheme://[user:pass@]host:port` (http or https). Stored normalised as
/// a URL.
pub fn parse_proxy(line: &str) -> Result<String, String> {
    if line.contains("://") {
        let url = url::Url::parse(line).map_err(|e| format!("not a proxy URL ({e}): {line:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "unsupported proxy scheme {:?} (http or https): {line:?}",
                url.scheme()
            ));
        }
        if url.host_str().is_none() || url.port_or_known_default().is_none() {
            return Err(format!("a proxy needs a host and a port: {line:?}"));
        }
        if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
            return Err(format!("a proxy URL has no path: {line:?}"));
        }
        let auth = match (url.username(), url.password()) {
            ("", _) => String::new(),
            (user, pass) => format!("{user}:{}@", pass.unwrap_or("")),
        };
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        return Ok(format!("{}://{auth}{host}:{port}", url.scheme()));
    }
    let parts: Vec<&str> = line.split(':').collect();
    let (host, port, auth) = match parts.as_slice() {
        [host, port] => (*host, *port, String::new()),
        [host, port, user, pass] => (*host, *port, format!("{}:{}@", encode(user), encode(pass))),
        _ => {
            return Err(format!(
                "expected host:port, host:port:user:pass or scheme://user:pass@host:port: {line:?}"
            ))
        }
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port {port:?}: {line:?}"))?;
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid_host {
        return Err(format!("bad host {host:?}: {line:?}"));
    }
    Ok(format!("http://{auth}{host}:{port}"))
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
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

pub async fn tasks(pool: &PgPool, path: &Path, kind: &str) -> anyhow::Result<Uploaded> {
    tasks_with(pool, path, kind, &TaskParams::default(), None).await
}

/// A task line with parameters: a plain target takes `defaults`; a URL task
/// may also be a JSON line `{"url": …, "wait_for": …, "extract": …,
/// "screenshot": true}`, whose keys override the defaults. `profiles`, when
/// given, are the extraction profiles a line may name.
pub fn parse_task_line(
    kind: &str,
    line: &str,
    defaults: &TaskParams,
    profiles: Option<&[String]>,
) -> Result<(String, TaskParams), String> {
    let (target, params) = if line.starts_with('{') && kind != "offer_refresh" {
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
    if let (Some(name), Some(known)) = (&params.extract, profiles) {
        if !known.contains(name) {
            return Err(format!(
                "no extraction profile worker.extract.{name} (known: {})",
                known.join(", ")
            ));
        }
    }
    if kind == "offer_refresh" && params != TaskParams::default() {
        return Err("offer_refresh tasks take no parameters".into());
    }
    Ok((target, params))
}

/// `worker tasks upload [--extract P] [--wait-for CSS] [--screenshot]`.
pub async fn tasks_with(
    pool: &PgPool,
    path: &Path,
    kind: &str,
    defaults: &TaskParams,
    profiles: Option<&[String]>,
) -> anyhow::Result<Uploaded> {
    if !db::tasks::KINDS.contains(&kind) {
        anyhow::bail!("unknown task kind {kind:?} (one of {:?})", db::tasks::KINDS);
    }
    let (good, mut up) = parse_lines_by(
        &read(path)?,
        |line| parse_task_line(kind, line, defaults, profiles),
        |(target, _)| target.clone(),
    );
    for chunk in good.chunks(5000) {
        let targets: Vec<String> = chunk.iter().map(|(t, _)| t.clone()).collect();
        let params: Vec<serde_json::Value> = chunk.iter().map(|(_, p)| p.to_json()).collect();
        up.stored += db::tasks::insert_with_params(pool, kind, &targets, &params)
            .await
            .context("Failed to store tasks")?;
    }
    up.already_stored = good.len() as u64 - up.stored;
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
        let (good, report) = parse_lines(text, |l| parse_task("fetch_url", l));
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
        let (target, params) =
            parse_task_line("render_url", "http://a.test/1", &defaults, Some(&known)).unwrap();
        assert_eq!((target.as_str(), &params), ("http://a.test/1", &defaults));
        let (_, params) = parse_task_line(
            "render_url",
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
                parse_task_line("render_url", bad, &defaults, Some(&known)).is_err(),
                "{bad} should be refused"
            );
        }
        let (good, report) = parse_lines_by(
            "http://a.test/1\n{\"url\": \"http://a.test/1\"}\n",
            |l| parse_task_line("fetch_url", l, &TaskParams::default(), None),
            |(t, _)| t.clone(),
        );
        assert_eq!((good.len(), report.duplicates), (1, 1));
    }

    #[test]
    fn an_offer_refresh_line_is_a_plain_listing_id() {
        assert_eq!(parse_task("offer_refresh", "abc-123").unwrap(), "abc-123");
        assert!(parse_task("offer_refresh", "a b").is_err());
    }
}
