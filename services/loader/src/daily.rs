//! The daily update (SPEC 3.2): for each date from the resume point up to
//! today, `/change_id?date=` then `/changes` page after page. A page's
//! changes are folded in id order (domain::change) over the rows they name
//! and written with one statement, in the same transaction as the date's
//! cursor in `sync_state`; the transaction commits before the next request.
//!
//! A past date ends where the next date's first change starts, and is then
//! marked done. Today has no end yet: it is applied up to the tip of the
//! feed and stays open, so the next run resumes it from its cursor.

use anyhow::Context;
use chrono::NaiveDate;
use db::PgPool;
use tokio_util::sync::CancellationToken;
use upstream::{ChangesPage, Client, UpstreamError};

use crate::report::RunReport;

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
            let start = db::sync_state::resume_date(&mut conn)
                .await
                .context("Failed to read sync_state")?
                .unwrap_or(today);
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
            let write = apply_page(
                pool,
                date,
                (cursor, new_cursor),
                last_applied,
                &events,
                &page.rejected,
            );
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

/// One page of changes in one transaction: the rows it touches, locked and
/// folded in order, written by one statement, and the date's cursor.
/// The page's rejected items are recorded in the same transaction.
async fn apply_page(
    pool: &PgPool,
    date: NaiveDate,
    (cursor, new_cursor): (i64, i64),
    last_applied: Option<i64>,
    events: &[domain::change::ChangeEvent],
    rejected: &[domain::change::RejectedItem],
) -> anyhow::Result<db::raw::Written> {
    let mut tx = pool.begin().await.context("begin changes transaction")?;
    db::rejected::record(&mut tx, db::rejected::Origin::Changes(cursor), rejected)
        .await
        .context("Failed to record the page's rejected items")?;
    let ids: Vec<&str> = events.iter().map(|e| e.inner_id.as_str()).collect();
    let stored = db::raw::lock_states(&mut tx, &ids).await?;
    let rows = domain::change::fold_page(stored, events);
    let written = db::raw::upsert_states(&mut *tx, &rows).await?;
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
