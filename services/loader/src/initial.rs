//! The initial load (SPEC 3.1): `/offers` page after page until `next_page`
//! is null. Each page is stored in one transaction together with the cursor,
//! then committed before the next request, so a killed load resumes at the
//! first page not stored. While a page is written, the next one is already
//! downloading (still one download stream).

use anyhow::Context;
use db::PgPool;
use tokio_util::sync::CancellationToken;
use upstream::{Client, OffersPage, UpstreamError};

use crate::report::RunReport;
use telemetry::progress::Progress;

/// `loader initial` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitialOptions {
    /// Stop after this many pages stored by this run (the load resumes later).
    pub max_pages: Option<u32>,
}

/// The load itself; counts go into `report` as they happen, so a failed run
/// still reports what it did.
pub async fn load(
    client: &Client,
    pool: &PgPool,
    shutdown: &CancellationToken,
    options: InitialOptions,
    settings: &settings::LoaderSettings,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let state = {
        let mut conn = pool
            .acquire()
            .await
            .context("Failed to get a database connection")?;
        db::load_state::start(&mut conn)
            .await
            .context("Failed to read the initial-load cursor")?
    };
    if let Some(finished) = state.finished_at {
        tracing::info!(
            "The initial load already finished at {finished} ({} records); nothing to do",
            state.records_stored
        );
        report
            .notes
            .push("nothing new: the initial load was already finished".into());
        return Ok(());
    }
    let mut page = u32::try_from(state.next_page).unwrap_or(1).max(1);
    if page > 1 {
        tracing::info!(
            "Resuming the initial load at page {page} ({} records stored so far)",
            state.records_stored
        );
    } else {
        tracing::info!("Starting the initial load at page 1");
    }
    let records_before = u64::try_from(state.records_stored).unwrap_or(0);
    let expected_total = u64::try_from(settings.expected_total).unwrap_or(0);
    let mut progress = Progress::new(expected_total, records_before, settings.progress_interval);
    let max_pages = options.max_pages.map_or(u64::MAX, u64::from);
    let mut prefetched: Option<Result<OffersPage, UpstreamError>> = None;
    let mut stored_this_run = 0u64;
    loop {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        if stored_this_run >= max_pages {
            tracing::info!("Stopping after {stored_this_run} page(s) as asked (--max-pages); the load resumes at page {page}");
            break;
        }
        tracing::debug!("Starting page {page} loading");
        let fetched = match prefetched.take() {
            Some(result) => result,
            None => client.offers_page(page).await,
        };
        let offers = match fetched {
            Ok(offers) => offers,
            Err(UpstreamError::Cancelled { .. }) => {
                report.interrupted = true;
                break;
            }
            Err(err) if err.is_fatal() => {
                return Err(err).context(format!("Failed to load page {page}"))
            }
            Err(err) => {
                tracing::error!("Page {page} failed every attempt and is skipped: {err}");
                let mut conn = pool
                    .acquire()
                    .await
                    .context("Failed to get a database connection")?;
                db::load_state::skip_failed(&mut conn, to_i32(page))
                    .await
                    .with_context(|| format!("Failed to record page {page} as failed"))?;
                report.failed_pages.push(page);
                page += 1;
                continue;
            }
        };
        let next = offers.next_page;
        let write = store_page(pool, page, &offers);
        let prefetch_more =
            next.is_some() && stored_this_run + 1 < max_pages && !shutdown.is_cancelled();
        let inserted = match next {
            Some(next_page) if prefetch_more => {
                let (written, fetched) = tokio::join!(write, client.offers_page(next_page));
                prefetched = Some(fetched);
                written
            }
            _ => write.await,
        }
        .with_context(|| format!("Failed to store page {page}"))?;
        stored_this_run += 1;
        let received = offers.items.len() as u64;
        report.pages += 1;
        report.received += received;
        report.inserted += inserted;
        report.skipped += received - inserted;
        report.malformed += offers.malformed as u64;
        tracing::info!("Stored page {page} ({received} listings, {inserted} new)");
        progress.add(inserted);
        match next {
            Some(next_page) => page = next_page,
            None => {
                tracing::info!("The initial load is complete: page {page} was the last one");
                break;
            }
        }
    }
    progress.print();
    if report.received == 0 && report.failed_pages.is_empty() && !report.interrupted {
        tracing::info!("The upstream sent no listings in this run: nothing new");
        report
            .notes
            .push("nothing new: the upstream sent no listings".into());
    }
    Ok(())
}

/// One page, one statement: the listings and the cursor (atomic, no
/// transaction held open; the next request starts after it returns).
async fn store_page(pool: &PgPool, page: u32, offers: &OffersPage) -> anyhow::Result<u64> {
    db::raw::store_initial_page(
        pool,
        to_i32(page),
        offers.next_page.map(to_i32),
        &offers.items,
    )
    .await?
    .context("the initial-load cursor moved (another run?)")
}

fn to_i32(page: u32) -> i32 {
    i32::try_from(page).unwrap_or(i32::MAX)
}
