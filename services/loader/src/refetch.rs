//! Pages of the initial load that failed every attempt are not lost: they
//! are fetched again at the end of the load and by every later run (`loader
//! initial`, and `loader serve` before each daily update), one round per
//! run, until none remain. Each one is stored in its own transaction with
//! its removal from `initial_load_state.failed_pages` (the cursor does not
//! move). The load counts as finished when none remain, or after
//! `loader.failed_page_rounds` rounds; the pages still missing are named in
//! the log, in the run's `operations_log` row and in `/stats`.

use anyhow::Context;
use db::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use upstream::{Client, UpstreamError};

use crate::pipeline::{store_refetched_page, PageRows};
use crate::report::RunReport;

/// One round over the failed pages, once the feed has ended; it counts
/// towards `max_rounds` while the load is not finished.
#[tracing::instrument(skip_all)]
pub async fn round(
    client: &Client,
    pool: &PgPool,
    shutdown: &CancellationToken,
    max_rounds: i32,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    fetch_again(client, pool, shutdown, report).await?;
    if report.interrupted {
        return Ok(());
    }
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to get a database connection")?;
    let was_finished = db::load_state::get(&mut *conn)
        .await
        .context("Failed to read the initial-load cursor")?
        .is_some_and(|state| state.finished_at.is_some());
    let state = db::load_state::end_round(&mut conn, max_rounds)
        .await
        .context("Failed to record the round over the failed pages")?;
    let missing = state.failed_pages;
    if missing.is_empty() {
        return Ok(());
    }
    if state.finished_at.is_none() {
        tracing::error!(
            "The initial load is missing page(s) {} after round {} of {max_rounds}: they failed \
             every attempt; the next run fetches them again",
            list(&missing),
            state.refetch_rounds
        );
    } else if was_finished {
        tracing::error!(
            "The initial load is still missing page(s) {}; the next run fetches them again",
            list(&missing)
        );
    } else {
        tracing::error!(
            "The initial load counts as finished after {} rounds without page(s) {}: they \
             failed every attempt; later runs keep fetching them",
            state.refetch_rounds,
            list(&missing)
        );
        report.notes.push(format!(
            "initial load finished after {} rounds with pages missing",
            state.refetch_rounds
        ));
    }
    report.missing_pages = missing;
    Ok(())
}

/// Fetches every failed page once and stores those that come.
async fn fetch_again(
    client: &Client,
    pool: &PgPool,
    shutdown: &CancellationToken,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let pages = failed(pool).await?;
    if pages.is_empty() {
        return Ok(());
    }
    tracing::info!(
        "Fetching {} failed page(s) again: {}",
        pages.len(),
        list(&pages)
    );
    for page in pages {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        let request = client.offers_page(u32::try_from(page).unwrap_or(0));
        let span = tracing::info_span!("page", page);
        match request.instrument(span.clone()).await {
            Ok(offers) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .context("Failed to get a database connection")?;
                let received = offers.items.len() as u64;
                let malformed = offers.malformed as u64;
                let rows = PageRows {
                    page,
                    items: offers.items,
                    rejected: offers.rejected,
                };
                let stored = store_refetched_page(&mut conn, rows)
                    .instrument(span)
                    .await
                    .with_context(|| format!("Failed to store page {page}"))?;
                let Some((inserted, refused)) = stored else {
                    continue; // another run stored it meanwhile
                };
                report.pages += 1;
                report.received += received;
                report.inserted += inserted;
                report.skipped += received.saturating_sub(inserted + refused);
                report.malformed += malformed + refused;
                tracing::info!(
                    "Stored page {page} on a later try ({received} listings, {inserted} new)"
                );
            }
            Err(UpstreamError::Cancelled { .. }) => {
                report.interrupted = true;
                break;
            }
            Err(err) if err.is_fatal() => {
                return Err(err).context(format!("Failed to load page {page}"));
            }
            Err(err) => tracing::warn!("Page {page} failed again: {err}"),
        }
    }
    Ok(())
}

async fn failed(pool: &PgPool) -> anyhow::Result<Vec<i32>> {
    Ok(db::load_state::get(pool)
        .await
        .context("Failed to read the initial-load cursor")?
        .map(|state| state.failed_pages)
        .unwrap_or_default())
}

fn list(pages: &[i32]) -> String {
    pages
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
