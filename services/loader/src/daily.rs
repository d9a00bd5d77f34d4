//! The daily update (SPEC 3.2): for each date from the resume point up to
//! today, `/change_id?date=` then `/changes` page after page. A page's
//! changes are folded in id order (domain::change) over the rows they name
//! and written with one statement, in the same transaction as the date's
//! cursor in `sync_state`; the transaction commits before the next request.
//!
//! A past date ends where the next date's first change starts, and is then
//! marked done. Today has no end yet: it is applied up to the tip of the
//! feed and stays open, so the next run resumes it from its cursor.
//!
//! The first run starts at the day the initial load started (not the day it
//! runs), so changes made during a long initial load are applied; the
//! per-row event-id check makes replaying them safe. A `changed` or
//! `removed` event for a listing we do not have brings its full record from
//! `/offer` (fetched before the page's transaction); without one the row
//! stays inactive until a full record arrives. A row Postgres refuses is
//! isolated by halving and kept in `rejected_items`; the rest of the page
//! is applied.

use std::collections::HashMap;

use anyhow::Context;
use chrono::NaiveDate;
use db::PgPool;
use domain::change::{ChangeEvent, RejectedItem, RowState};
use domain::listing::ChangeType;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use upstream::{ChangesPage, Client, UpstreamError};

use crate::report::RunReport;
use db::isolate;

/// `loader daily` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct DailyOptions {
    /// Process at most this many dates.
    pub max_dates: Option<u32>,
    /// Process exactly this date (re-runs and backfills), from its start if
    /// it was done, else from its cursor.
    pub date: Option<NaiveDate>,
    /// "Today" (UTC) for the run; `None` means the clock's.
    pub today: Option<NaiveDate>,
}

/// How one date ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateOutcome {
    /// Every change of the date is applied and recorded.
    Finished,
    /// The feed has nothing more for now (today, or a stalled feed).
    AtTip,
    Interrupted,
}

#[tracing::instrument(name = "daily_update", skip_all)]
pub async fn update(
    client: &Client,
    pool: &PgPool,
    shutdown: &CancellationToken,
    options: DailyOptions,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let today = options
        .today
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let dates: Vec<NaiveDate> = match options.date {
        Some(date) => vec![date],
        None => {
            let mut conn = pool
                .acquire()
                .await
                .context("Failed to get a database connection")?;
            let resume = db::sync_state::resume_date(&mut conn)
                .await
                .context("Failed to read sync_state")?;
            let start = match resume {
                Some(date) => date,
                // The first daily run: from the day the initial load began.
                None => db::load_state::get(&mut *conn)
                    .await
                    .context("Failed to read the initial-load cursor")?
                    .map_or(today, |state| state.started_at.date_naive().min(today)),
            };
            start.iter_days().take_while(|d| *d <= today).collect()
        }
    };
    let max = options.max_dates.map_or(usize::MAX, |n| n as usize);
    if dates.is_empty() {
        tracing::info!("Every date up to {today} is already applied; nothing to do");
    }
    for date in dates.into_iter().take(max) {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        let outcome = apply_date(
            client,
            pool,
            shutdown,
            date,
            today,
            options.date.is_some(),
            report,
        )
        .instrument(tracing::info_span!("date", %date))
        .await;
        match outcome {
            Ok(DateOutcome::Finished) => {
                tracing::info!("Date {date} is fully applied");
                report.dates_completed.push(date);
            }
            Ok(DateOutcome::AtTip) => {
                if date < today {
                    tracing::warn!("The feed ended before the end of {date} (stalled?); the next run resumes there");
                    report.notes.push(format!("feed stalled inside {date}"));
                } else {
                    tracing::info!(
                        "Applied {date} up to the tip of the feed; the next run resumes there"
                    );
                }
                break;
            }
            Ok(DateOutcome::Interrupted) => {
                report.interrupted = true;
                break;
            }
            Err(err) => {
                if let Some(upstream) = err.downcast_ref::<UpstreamError>() {
                    if matches!(upstream, UpstreamError::Cancelled { .. }) {
                        report.interrupted = true;
                        break;
                    }
                    if !upstream.is_fatal() {
                        // A date that cannot be completed stays unfinished;
                        // later dates wait for it.
                        tracing::error!(
                            "Date {date} could not be completed and stays unfinished: {err:#}"
                        );
                        report.failed_date = Some(date);
                        break;
                    }
                }
                return Err(err.context(format!("Failed to apply the changes of {date}")));
            }
        }
    }
    if report.received == 0 && !report.interrupted && report.failed_date.is_none() {
        tracing::info!(
            "The upstream sent no new changes in this run (the feed may be stalled): nothing new"
        );
        report
            .notes
            .push("nothing new: the upstream sent no changes".into());
    }
    Ok(())
}

async fn apply_date(
    client: &Client,
    pool: &PgPool,
    shutdown: &CancellationToken,
    date: NaiveDate,
    today: NaiveDate,
    explicit: bool,
    report: &mut RunReport,
) -> anyhow::Result<DateOutcome> {
    let existing = db::sync_state::get(pool, date)
        .await
        .context("Failed to read sync_state")?;
    let restart = explicit
        && existing
            .as_ref()
            .is_some_and(db::sync_state::DateState::is_finished);
    let state = match existing {
        Some(state) if !restart && state.next_change_id.is_some() => state,
        _ => {
            let first = client.change_id(date).await?;
            db::sync_state::begin(pool, date, first, restart)
                .await
                .context("Failed to start the date in sync_state")?
        }
    };
    let end = if date < today {
        let next_day = date.succ_opt().context("date overflow")?;
        Some(client.change_id(next_day).await?)
    } else {
        None
    };
    let mut cursor = state
        .next_change_id
        .context("sync_state row without a cursor")?;
    tracing::info!("Applying the changes of {date} from change {cursor}");
    let mut prefetched: Option<Result<ChangesPage, UpstreamError>> = None;
    loop {
        if end.is_some_and(|end| cursor >= end) {
            db::sync_state::finish(pool, date)
                .await
                .context("Failed to mark the date done")?;
            return Ok(DateOutcome::Finished);
        }
        if shutdown.is_cancelled() {
            return Ok(DateOutcome::Interrupted);
        }
        let page = match prefetched.take() {
            Some(fetched) => fetched?,
            None => client.changes(cursor).await?,
        };
        report.pages += 1;
        report.malformed += page.malformed as u64;
        let events: Vec<_> = page
            .items
            .into_iter()
            .filter(|e| e.id >= cursor && end.is_none_or(|end| e.id < end))
            .collect();
        let last_applied = events.iter().map(|e| e.id).max();
        // Where the next page starts: the feed's next id, cut at the date's end.
        let next = page.next_change_id.filter(|n| *n > cursor);
        let new_cursor = match (next, end) {
            (Some(next), Some(end)) => next.min(end),
            (Some(next), None) => next,
            (None, _) => last_applied.map_or(cursor, |id| id + 1),
        };
        if !events.is_empty() || !page.rejected.is_empty() || new_cursor != cursor {
            let records = full_records(client, pool, &events)
                .await
                .context("Failed to fetch the full records of unknown listings")?;
            let write = apply_page(
                pool,
                date,
                (cursor, new_cursor),
                last_applied,
                &events,
                records,
                &page.rejected,
            )
            .instrument(tracing::info_span!("page", change_id = cursor));
            // While the page is written, the next one downloads (one stream).
            let more = next.is_some() && end.is_none_or(|end| new_cursor < end);
            let written = if more && !shutdown.is_cancelled() {
                let (written, fetched) = tokio::join!(write, client.changes(new_cursor));
                prefetched = Some(fetched);
                written?
            } else {
                write.await?
            };
            report.received += events.len() as u64;
            report.inserted += written.inserted;
            report.updated += written.updated;
            report.skipped += written.unchanged;
            report.malformed += written.refused;
            tracing::debug!(
                "Applied changes {cursor}..{new_cursor} of {date} ({} changes, {} new rows, {} updated)",
                events.len(),
                written.inserted,
                written.updated
            );
        }
        cursor = new_cursor;
        if next.is_none() {
            if end.is_some_and(|end| cursor >= end) {
                continue;
            }
            return Ok(DateOutcome::AtTip);
        }
    }
}

/// The full records, from `/offer`, of the listings whose first event in
/// the page is `changed` or `removed` and which we do not have. A listing
/// `/offer` does not know (404), or cannot send now, gets none: its row
/// stays inactive until a full record arrives. Fetched before the page's
/// transaction, so no transaction waits on the network.
async fn full_records(
    client: &Client,
    pool: &PgPool,
    events: &[ChangeEvent],
) -> anyhow::Result<HashMap<String, Map<String, Value>>> {
    let mut first: HashMap<&str, &ChangeEvent> = HashMap::new();
    for event in events {
        let seen = first.entry(&event.inner_id).or_insert(event);
        if event.id < seen.id {
            *seen = event;
        }
    }
    let partial: Vec<&str> = first
        .values()
        .filter(|e| e.change_type != ChangeType::Added)
        .map(|e| e.inner_id.as_str())
        .collect();
    let mut records = HashMap::new();
    if partial.is_empty() {
        return Ok(records);
    }
    let stored = db::raw::stored_ids(pool, &partial)
        .await
        .context("Failed to read which listings are stored")?;
    for inner_id in partial {
        if stored.iter().any(|s| s == inner_id) {
            continue;
        }
        match client.offer(inner_id).await {
            Ok(Some(record)) => {
                records.insert(inner_id.to_owned(), record);
            }
            Ok(None) => tracing::debug!(
                inner_id = %inner_id.escape_debug(),
                "/offer does not know the listing: kept inactive until a full record arrives"
            ),
            Err(err) if err.is_fatal() || matches!(err, UpstreamError::Cancelled { .. }) => {
                return Err(err.into())
            }
            Err(err) => tracing::warn!(
                inner_id = %inner_id.escape_debug(),
                "No full record from /offer ({err}): the listing is kept inactive until one arrives"
            ),
        }
    }
    Ok(records)
}

/// What a page's write did.
#[derive(Debug, Clone, Copy, Default)]
struct PageWritten {
    inserted: u64,
    updated: u64,
    unchanged: u64,
    /// Listings whose row Postgres refused (kept in `rejected_items`).
    refused: u64,
}

/// One page of changes in one transaction: the rows it touches, locked and
/// folded in order (over the full records fetched for unknown listings),
/// written by one statement (halved around rows Postgres refuses), and the
/// date's cursor. The page's rejected items are recorded in the same
/// transaction.
async fn apply_page(
    pool: &PgPool,
    date: NaiveDate,
    (cursor, new_cursor): (i64, i64),
    last_applied: Option<i64>,
    events: &[ChangeEvent],
    records: HashMap<String, Map<String, Value>>,
    rejected: &[RejectedItem],
) -> anyhow::Result<PageWritten> {
    let origin = db::rejected::Origin::Changes(cursor);
    let mut tx = pool.begin().await.context("begin changes transaction")?;
    db::rejected::record(&mut tx, origin, rejected)
        .await
        .context("Failed to record the page's rejected items")?;
    let ids: Vec<&str> = events.iter().map(|e| e.inner_id.as_str()).collect();
    let mut stored = db::raw::lock_states(&mut tx, &ids).await?;
    for (inner_id, record) in records {
        stored
            .entry(inner_id)
            .or_insert_with(|| RowState::full_record(record));
    }
    let rows = domain::change::fold_page(stored, events);
    let done = isolate::write_isolating(&mut tx, &rows, |conn, rows| {
        Box::pin(db::raw::upsert_states(conn, rows))
    })
    .await
    .context("Failed to write the page's rows")?;
    let mut written = PageWritten {
        refused: done.refused.len() as u64,
        ..PageWritten::default()
    };
    for w in &done.written {
        written.inserted += w.inserted;
        written.updated += w.updated;
        written.unchanged += w.unchanged;
    }
    let refused: Vec<RejectedItem> = done
        .refused
        .into_iter()
        .map(|(index, reason)| {
            let inner_id = &rows[index].0;
            tracing::warn!(
                inner_id = %inner_id.escape_debug(),
                "Rejected a listing's changes: {}",
                reason.escape_debug()
            );
            RejectedItem::new(Some(inner_id), reason, &events_text(events, inner_id))
        })
        .collect();
    db::rejected::record(&mut tx, origin, &refused)
        .await
        .context("Failed to record the rows Postgres refused")?;
    db::sync_state::advance(
        &mut tx,
        date,
        cursor,
        new_cursor,
        last_applied,
        events.len() as i64,
    )
    .await
    .context("the sync_state cursor moved (another run?)")?;
    tx.commit().await.context("commit changes transaction")?;
    Ok(written)
}

/// The page's events about `inner_id`, as JSON text for `rejected_items`.
fn events_text(events: &[ChangeEvent], inner_id: &str) -> String {
    let list: Vec<Value> = events
        .iter()
        .filter(|e| e.inner_id == inner_id)
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "inner_id": e.inner_id,
                "change_type": e.change_type.as_str(),
                "created_at": e.created_at.map(|at| at.to_rfc3339()),
                "data": e.data,
            })
        })
        .collect();
    Value::Array(list).to_string()
}
