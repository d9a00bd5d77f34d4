//! Pages of the initial load that failed every attempt are not lost: they
//! are fetched again at the end of the load and by every later `loader
//! initial` run, until none remain. Each one is stored in its own
//! transaction with its removal from `initial_load_state.failed_pages`
//! (the cursor does not move). The pages still missing are named in the
//! log, in the run's `operations_log` row and in `/stats`.

use anyhow::Context;
use db::PgPool;
use tokio_util::sync::CancellationToken;
use upstream::{Client, UpstreamError};

use crate::report::RunReport;

/// One round over the failed pages.
pub async fn failed_pages(
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
        match client.offers_page(u32::try_from(page).unwrap_or(0)).await {
            Ok(offers) => {
                let mut tx = pool
                    .begin()
                    .await
                    .context("Failed to begin a transaction")?;
                let stored = db::initial_pages::store_refetched_page(
                    &mut tx,
                    page,
                    &offers.items,
                    &offers.rejected,
                )
                .await
                .with_context(|| format!("Failed to store page {page}"))?;
                let Some(inserted) = stored else {
                    continue; // another run stored it meanwhile; `tx` rolls back
                };
                tx.commit()
                    .await
                    .with_context(|| format!("Failed to store page {page}"))?;
                let received = offers.items.len() as u64;
                report.pages += 1;
                report.received += received;
                report.inserted += inserted;
                report.skipped += received.saturating_sub(inserted);
                report.malformed += offers.malformed as u64;
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
    let missing = failed(pool).await?;
    if !missing.is_empty() {
        tracing::error!(
            "The initial load is missing page(s) {}: they failed every attempt; the next run fetches them again",
            list(&missing)
        );
        report.missing_pages = missing;
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
