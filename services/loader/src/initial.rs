//! The initial load (SPEC 3.1): `/offers` page after page until `next_page`
//! is null. One task downloads the pages in order (one download stream) and
//! hands them to the writer, which stores whatever has arrived since its
//! last write in one transaction together with the cursor. So at high
//! latency every page is written as soon as it lands, and when the database
//! is the slower side pages queue up and go in as one larger write. Up to
//! `loader.write_connections` writes are in flight at once and commit in
//! page order (`crate::pipeline::PagePipeline`). A killed load resumes at
//! the first page not stored and never stores a page twice.

use anyhow::Context;
use db::commit::Commit;
use db::load_state::PageSpan;
use db::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use upstream::{Client, OffersPage, UpstreamError};

use crate::pipeline::{PagePipeline, PageRows, StoredPages, WriteFailed};
use crate::refetch;
use crate::report::RunReport;
use telemetry::progress::Progress;

/// At most this many listings per write: bounds one transaction, and what a
/// crash makes the next run fetch again.
const MAX_ROWS_PER_WRITE: usize = 1_000;
/// How many downloaded pages may wait for the writer (about 90 KB each).
const PAGES_AHEAD: usize = 64;

/// `loader initial` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitialOptions {
    /// Stop after this many pages stored by this run (the load resumes later).
    pub max_pages: Option<u32>,
}

/// The load itself; counts go into `report` as they happen, so a failed run
/// still reports what it did.
#[tracing::instrument(name = "initial_load", skip_all)]
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
    if state.feed_ended_at.is_some() {
        if let (Some(finished), true) = (state.finished_at, state.failed_pages.is_empty()) {
            tracing::info!(
                "The initial load already finished at {finished} ({} records); nothing to do",
                state.records_stored
            );
            report
                .notes
                .push("nothing new: the initial load was already finished".into());
            return Ok(());
        }
        // The feed was read to its end: only its failed pages remain.
        return refetch::round(client, pool, shutdown, settings.failed_page_rounds, report).await;
    }
    let first_page = u32::try_from(state.next_page).unwrap_or(1).max(1);
    if first_page > 1 {
        tracing::info!(
            "Resuming the initial load at page {first_page} ({} records stored so far)",
            state.records_stored
        );
    } else {
        tracing::info!("Starting the initial load at page 1");
    }
    let records_before = u64::try_from(state.records_stored).unwrap_or(0);
    let expected_total = settings.expected_total;
    let commit = if settings.synchronous_commit {
        Commit::Synchronous
    } else {
        Commit::Asynchronous
    };
    let mut writer = Writer {
        pool,
        report,
        pipeline: PagePipeline::new(pool.clone(), commit, settings.write_connections.get()),
        progress: Progress::new(expected_total, records_before, settings.progress_interval),
        pending: Vec::new(),
        failed_in_a_row: 0,
        max_failed_in_a_row: settings.max_consecutive_failed_pages,
    };
    let (pages_tx, pages_rx) = mpsc::channel(PAGES_AHEAD);
    let max_pages = options.max_pages.map_or(u64::MAX, u64::from);
    // A failed write ends the run at once, dropping the download (which may
    // be waiting minutes between retries).
    let (end, ()) = tokio::try_join!(
        async { Ok(fetch_pages(client, shutdown, first_page, max_pages, pages_tx).await) },
        writer.write_all(pages_rx)
    )?;
    writer.progress.print();
    let report = writer.report;
    match end {
        FetchEnd::LastPage(page) => {
            tracing::info!("The initial load is complete: page {page} was the last one");
            let stored = records_before + report.inserted;
            if expected_total > 0 && stored < expected_total / 2 {
                tracing::warn!(
                    "The feed ended at page {page} with {stored} listings stored, far below the \
                     {expected_total} expected (loader.expected_total)"
                );
                report.notes.push(format!(
                    "feed ended far below loader.expected_total ({stored} of {expected_total})"
                ));
            }
            refetch::round(client, pool, shutdown, settings.failed_page_rounds, report).await?;
        }
        FetchEnd::MaxPages(next) => tracing::info!(
            "Stopping after {max_pages} page(s) as asked (--max-pages); the load resumes at page {next}"
        ),
        FetchEnd::Interrupted => report.interrupted = true,
        FetchEnd::Fatal => {} // the writer returned the error
    }
    if report.received == 0 && report.failed_pages.is_empty() && !report.interrupted {
        tracing::info!("The upstream sent no listings in this run: nothing new");
        report
            .notes
            .push("nothing new: the upstream sent no listings".into());
    }
    Ok(())
}

/// What the download task hands the writer, in page order.
enum Fetched {
    Page(u32, OffersPage),
    /// The page failed every attempt: recorded and skipped.
    Failed(u32, UpstreamError),
    /// A failure no retry can fix (bad key): the run stops.
    Fatal(u32, UpstreamError),
    /// The page names a next page not after itself: where the feed ends is
    /// unclear, so the run stops rather than loop or skip.
    BadNextPage(u32, u32),
}

/// Why the download task stopped.
enum FetchEnd {
    /// The feed ended at this page.
    LastPage(u32),
    /// `--max-pages` reached; the load resumes at this page.
    MaxPages(u32),
    Interrupted,
    Fatal,
}

/// Downloads pages from `page` on, one request at a time, until the feed
/// ends, `max_pages` pages came back, shutdown, or a fatal error.
async fn fetch_pages(
    client: &Client,
    shutdown: &CancellationToken,
    mut page: u32,
    max_pages: u64,
    pages: mpsc::Sender<Fetched>,
) -> FetchEnd {
    let mut fetched = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return FetchEnd::Interrupted;
        }
        if fetched >= max_pages {
            return FetchEnd::MaxPages(page);
        }
        tracing::debug!("Starting page {page} loading");
        let request = client.offers_page(page);
        let (item, next) = match request.instrument(tracing::info_span!("page", page)).await {
            Ok(offers) => {
                fetched += 1;
                let next = offers.next_page;
                if let Some(bad) = next.filter(|next| *next <= page) {
                    let _ = pages.send(Fetched::Page(page, offers)).await;
                    let _ = pages.send(Fetched::BadNextPage(page, bad)).await;
                    return FetchEnd::Fatal;
                }
                (Fetched::Page(page, offers), next)
            }
            Err(UpstreamError::Cancelled { .. }) => return FetchEnd::Interrupted,
            Err(err) if err.is_fatal() => {
                let _ = pages.send(Fetched::Fatal(page, err)).await;
                return FetchEnd::Fatal;
            }
            Err(err) => (Fetched::Failed(page, err), Some(page + 1)),
        };
        if pages.send(item).await.is_err() {
            return FetchEnd::Fatal; // the writer stopped on an error
        }
        match next {
            Some(next) => page = next,
            None => return FetchEnd::LastPage(page),
        }
    }
}

/// Stores downloaded pages: everything that arrived since the last write
/// goes in as one write (up to `MAX_ROWS_PER_WRITE`).
struct Writer<'a> {
    pool: &'a PgPool,
    report: &'a mut RunReport,
    pipeline: PagePipeline,
    progress: Progress,
    pending: Vec<(u32, OffersPage)>,
    /// Pages in a row that failed every attempt (reset by a page that came).
    failed_in_a_row: u32,
    max_failed_in_a_row: u32,
}

impl Writer<'_> {
    async fn write_all(&mut self, pages: mpsc::Receiver<Fetched>) -> anyhow::Result<()> {
        let result = self.write_pages(pages).await;
        // Whatever ended the run, the writes in flight finish (or roll
        // back) before it is reported.
        let finished = self.finish_writes().await;
        result.and(finished)
    }

    async fn write_pages(&mut self, mut pages: mpsc::Receiver<Fetched>) -> anyhow::Result<()> {
        loop {
            let next = if self.pending.is_empty() {
                pages.recv().await
            } else {
                match pages.try_recv() {
                    Ok(item) => Some(item),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.flush().await?;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                None => return self.flush().await,
                Some(Fetched::Page(page, offers)) => {
                    self.failed_in_a_row = 0;
                    self.pending.push((page, offers));
                    if self.pending_rows() >= MAX_ROWS_PER_WRITE {
                        self.flush().await?;
                    }
                }
                Some(Fetched::Failed(page, err)) => {
                    // The cursor skips the page only once every page
                    // before it is stored.
                    self.flush().await?;
                    self.finish_writes().await?;
                    self.skip_failed(page, &err).await?;
                    self.failed_in_a_row += 1;
                    if self.failed_in_a_row >= self.max_failed_in_a_row {
                        anyhow::bail!(
                            "{} pages in a row failed every attempt (up to page {page}): the \
                             upstream looks down, so the load stops here; the next run resumes \
                             at page {} and fetches the failed pages again",
                            self.failed_in_a_row,
                            page + 1
                        );
                    }
                }
                Some(Fetched::Fatal(page, err)) => {
                    self.flush().await?;
                    return Err(err).context(format!("Failed to load page {page}"));
                }
                Some(Fetched::BadNextPage(page, next)) => {
                    self.flush().await?;
                    anyhow::bail!(
                        "Page {page} names page {next} as the next one, not a later page: \
                         the end of the feed is unclear, so the load stops here"
                    );
                }
            }
        }
    }

    fn pending_rows(&self) -> usize {
        self.pending.iter().map(|(_, p)| p.items.len()).sum()
    }

    /// Starts the write of the pending pages (and the cursor past them),
    /// recording the oldest write in flight should it have to finish first.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let (Some((first, _)), Some((_, last))) = (self.pending.first(), self.pending.last())
        else {
            return Ok(());
        };
        let span = PageSpan {
            first: to_i32(*first),
            count: to_i32(u32::try_from(self.pending.len()).unwrap_or(u32::MAX)),
            next: last.next_page.map(to_i32),
        };
        let mut pages = Vec::with_capacity(self.pending.len());
        for (page, offers) in self.pending.drain(..) {
            self.report.malformed += offers.malformed as u64;
            pages.push(PageRows {
                page: to_i32(page),
                items: offers.items,
                rejected: offers.rejected,
            });
        }
        let finished = self.pipeline.submit(span, pages).await.map_err(failed)?;
        if let Some(stored) = finished {
            self.record(stored);
        }
        Ok(())
    }

    /// Waits for every write in flight.
    async fn finish_writes(&mut self) -> anyhow::Result<()> {
        for stored in self.pipeline.finish().await.map_err(failed)? {
            self.record(stored);
        }
        Ok(())
    }

    fn record(&mut self, stored: StoredPages) {
        let StoredPages {
            span,
            received,
            inserted,
            refused,
        } = stored;
        self.report.pages += u64::try_from(span.count).unwrap_or(0);
        self.report.received += received;
        self.report.inserted += inserted;
        self.report.malformed += refused;
        self.report.skipped += received.saturating_sub(inserted + refused);
        tracing::info!(
            "Stored {} ({received} listings, {inserted} new, {refused} refused by Postgres)",
            span.label()
        );
        self.progress.add(inserted);
    }

    #[tracing::instrument(skip_all, fields(page = page))]
    async fn skip_failed(&mut self, page: u32, err: &UpstreamError) -> anyhow::Result<()> {
        tracing::error!("Page {page} failed every attempt and is skipped: {err}");
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("Failed to get a database connection")?;
        db::load_state::skip_failed(&mut conn, to_i32(page))
            .await
            .with_context(|| format!("Failed to record page {page} as failed"))?;
        self.report.failed_pages.push(page);
        Ok(())
    }
}

fn failed(failed: WriteFailed) -> anyhow::Error {
    anyhow::Error::new(failed.reason).context(format!("Failed to store {}", failed.span.label()))
}

fn to_i32(page: u32) -> i32 {
    i32::try_from(page).unwrap_or(i32::MAX)
}
