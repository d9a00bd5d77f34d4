//! The initial load's write path (SPEC 3.1): the listings of a run of
//! `/offers` pages go into `raw_data` in one transaction with the cursor
//! that says they are stored, so a killed load resumes at the first page not
//! stored and never stores a page twice.
//!
//! [`PagePipeline`] keeps several such writes in flight on their own
//! connections: each copies its rows while the one before it is still
//! copying, and the cursor moves (and the transaction commits) strictly in
//! page order. Postgres spends its time in the COPY (parsing the JSON into
//! jsonb, compressing it, six indexes), one CPU per connection, so two writes
//! in flight use two CPUs where one COPY uses one.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use db::commit::{Commit, Mode};
use db::load_state::PageSpan;
use db::rejected::Origin;
use db::{DbError, PgConnection, PgPool};
use domain::change::{OfferItem, RejectedItem};
use sqlx::Connection;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use db::isolate;

/// One downloaded page: its number, its listings and the items it rejected.
#[derive(Debug, Clone, Default)]
pub struct PageRows {
    pub page: i32,
    pub items: Vec<OfferItem>,
    pub rejected: Vec<RejectedItem>,
}

/// How one write ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Committed; this many listings were new, this many Postgres refused.
    Stored { inserted: u64, refused: u64 },
    /// The cursor was not at `span.first`: rolled back.
    CursorMoved,
    /// `may_commit` said no (the write before it failed): rolled back.
    Abandoned,
}

/// Listings to insert, each with the page it came from.
struct Rows<'a> {
    items: Vec<&'a OfferItem>,
    pages: Vec<i32>,
}

/// What an insert did: listings new, and those Postgres refused (by page).
struct Inserted {
    inserted: u64,
    refused: Vec<(i32, RejectedItem)>,
}

/// Inserts `rows` into the caller's transaction by `INSERT ... ON CONFLICT
/// DO NOTHING`, halved around the listings Postgres refuses (`isolate`).
async fn insert_isolating(tx: &mut PgConnection, rows: &Rows<'_>) -> Result<Inserted, DbError> {
    let done = isolate::write_isolating(tx, &rows.items, |conn, rows| {
        Box::pin(db::initial_pages::insert_on_conflict(conn, rows))
    })
    .await?;
    let refused = done
        .refused
        .into_iter()
        .map(|(index, reason)| {
            let item = rows.items[index];
            tracing::warn!(
                page = rows.pages[index],
                inner_id = %item.inner_id.escape_debug(),
                "Rejected a listing: {}",
                reason.escape_debug()
            );
            let rejected = RejectedItem::new(Some(&item.inner_id), reason, &offer_text(item));
            (rows.pages[index], rejected)
        })
        .collect();
    let inserted = done.written.iter().sum();
    Ok(Inserted { inserted, refused })
}

/// An item's JSON text as it was sent (its `data` verbatim), for
/// `rejected_items`.
fn offer_text(item: &OfferItem) -> String {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        r#"{{"id":{},"inner_id":{},"change_type":{},"created_at":{},"data":{}}}"#,
        item.id,
        text(&item.inner_id),
        text(item.change_type.as_str()),
        item.created_at
            .map_or("null".to_owned(), |at| text(&at.to_rfc3339())),
        item.data_json()
    )
}

/// Records the refused listings and the pages' rejected items.
async fn record_rejected(
    tx: &mut PgConnection,
    refused: &[(i32, RejectedItem)],
    pages: &[(i32, Vec<RejectedItem>)],
) -> Result<(), DbError> {
    for (page, item) in refused {
        db::rejected::record(tx, Origin::OffersPage(*page), std::slice::from_ref(item)).await?;
    }
    for (page, items) in pages {
        db::rejected::record(tx, Origin::OffersPage(*page), items).await?;
    }
    Ok(())
}

/// One write: `rows` (no `inner_id` twice) and the pages' `rejected` items
/// go in, then — once `may_commit` resolves to true — the fenced cursor,
/// then COMMIT, as `mode` says.
///
/// The rows go in by binary COPY. A listing already stored (pagination
/// drift upstream, an earlier daily update, a concurrent writer) or a value
/// Postgres refuses fails the COPY; the transaction then begins again and
/// the rows go in by `insert_isolating`.
async fn write(
    conn: &mut PgConnection,
    span: PageSpan,
    rows: &Rows<'_>,
    rejected: &[(i32, Vec<RejectedItem>)],
    mode: Mode,
    may_commit: impl Future<Output = bool>,
) -> Result<Outcome, DbError> {
    let mut tx = mode.begin(&mut *conn).await?;
    let done = match db::initial_pages::copy(&mut tx, &rows.items).await {
        Ok(inserted) => Inserted {
            inserted,
            refused: Vec::new(),
        },
        Err(err) if err.is_refused_value() => {
            if matches!(err, DbError::Conflict { .. }) {
                tracing::debug!("Listings already stored: inserting with ON CONFLICT");
            } else {
                tracing::warn!(
                    "Postgres refused a listing ({}): isolating it",
                    err.database_message().escape_debug()
                );
            }
            tx.rollback().await?;
            tx = mode.begin(&mut *conn).await?;
            insert_isolating(&mut tx, rows).await?
        }
        Err(err) => return Err(err),
    };
    record_rejected(&mut tx, &done.refused, rejected).await?;
    if !may_commit.await {
        return Ok(Outcome::Abandoned); // dropping `tx` rolls it back
    }
    // The fence comes last: should the cursor have moved (another run stored
    // these pages), the rows above are rolled back with it.
    let records = i64::try_from(done.inserted).unwrap_or(i64::MAX);
    if !db::load_state::advance(&mut tx, span, records).await? {
        return Ok(Outcome::CursorMoved);
    }
    tx.commit().await?;
    Ok(Outcome::Stored {
        inserted: done.inserted,
        refused: done.refused.len() as u64,
    })
}

/// Stores a page that failed before and was fetched again: its listings
/// (those stored meanwhile are kept), its rejected items, and its removal
/// from the failed pages, in one transaction; the cursor does not move.
/// Returns (new listings, listings Postgres refused), or `None` when the
/// page was no longer failed (another run stored it; nothing is written).
pub async fn store_refetched_page(
    conn: &mut PgConnection,
    page: PageRows,
) -> Result<Option<(u64, u64)>, DbError> {
    let mut seen = HashSet::with_capacity(page.items.len());
    let items: Vec<&OfferItem> = page
        .items
        .iter()
        .filter(|item| seen.insert(item.inner_id.as_str()))
        .collect();
    let rows = Rows {
        pages: vec![page.page; items.len()],
        items,
    };
    let mut tx = conn.begin().await?;
    let done = insert_isolating(&mut tx, &rows).await?;
    record_rejected(&mut tx, &done.refused, &[(page.page, page.rejected)]).await?;
    let records = i64::try_from(done.inserted).unwrap_or(i64::MAX);
    if !db::load_state::refetched(&mut tx, page.page, records).await? {
        return Ok(None); // dropping `tx` rolls it back
    }
    tx.commit().await?;
    Ok(Some((done.inserted, done.refused.len() as u64)))
}

/// A write the pipeline finished: its pages, the listings it was given, how
/// many of them were new, and how many Postgres refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPages {
    pub span: PageSpan,
    pub received: u64,
    pub inserted: u64,
    pub refused: u64,
}

/// A write the pipeline could not finish. The writes after it are rolled
/// back too (their cursor fence could not hold).
#[derive(Debug, Error)]
#[error("storing {} failed", span.label())]
pub struct WriteFailed {
    pub span: PageSpan,
    #[source]
    pub reason: WriteFailure,
}

#[derive(Debug, Error)]
pub enum WriteFailure {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the initial-load cursor moved (another run?)")]
    CursorMoved,
    #[error("an earlier write failed")]
    EarlierWriteFailed,
    #[error("the write task stopped unexpectedly")]
    TaskLost,
}

/// Initial-load writes with up to `depth` of them in flight, each on its own
/// pooled connection, committing in the order they were submitted.
///
/// Write k copies its rows at once, then waits for write k-1 to commit
/// before it moves the cursor and commits; if k-1 fails, k rolls back. The
/// writes in flight never insert the same `inner_id` (a later one leaves out
/// what an earlier one carries: that one commits first or nothing does), so
/// they never wait on each other's rows, and a pipeline cannot deadlock.
/// Every write task is awaited by `finish` (or by the failure it follows).
pub struct PagePipeline {
    pool: PgPool,
    mode: Mode,
    depth: usize,
    in_flight: VecDeque<InFlight>,
    /// The `inner_id`s of the last `depth - 1` writes: possibly uncommitted.
    recent_ids: VecDeque<HashSet<String>>,
    /// Resolves when the newest write has committed (true) or gave up.
    newest_committed: Option<oneshot::Receiver<bool>>,
}

struct InFlight {
    span: PageSpan,
    received: u64,
    task: JoinHandle<Result<Outcome, DbError>>,
}

impl PagePipeline {
    /// `depth` 1 writes one transaction at a time.
    pub fn new(pool: PgPool, commit: Commit, depth: usize) -> Self {
        Self {
            pool,
            mode: Mode::new().commit(commit),
            depth: depth.max(1),
            in_flight: VecDeque::new(),
            recent_ids: VecDeque::new(),
            newest_committed: None,
        }
    }

    /// Starts writing `pages` (the pages of `span`; a listing repeated among
    /// them, or in a write still in flight, keeps its first row). With
    /// `depth` writes already in flight it first waits for the oldest, and
    /// returns it.
    pub async fn submit(
        &mut self,
        span: PageSpan,
        pages: Vec<PageRows>,
    ) -> Result<Option<StoredPages>, WriteFailed> {
        let finished = if self.in_flight.len() >= self.depth {
            Some(self.finish_oldest().await?)
        } else {
            None
        };
        let received = pages.iter().map(|p| p.items.len() as u64).sum();
        let mut ids = HashSet::with_capacity(usize::try_from(received).unwrap_or(0));
        let mut rows: Vec<(i32, OfferItem)> = Vec::new();
        let mut rejected = Vec::new();
        for page in pages {
            for item in page.items {
                if !self.recent_ids.iter().any(|r| r.contains(&item.inner_id))
                    && ids.insert(item.inner_id.clone())
                {
                    rows.push((page.page, item));
                }
            }
            if !page.rejected.is_empty() {
                rejected.push((page.page, page.rejected));
            }
        }
        if self.depth > 1 {
            if self.recent_ids.len() == self.depth - 1 {
                self.recent_ids.pop_front();
            }
            self.recent_ids.push_back(ids);
        }
        let (committed_tx, committed_rx) = oneshot::channel();
        let previous = self.newest_committed.replace(committed_rx);
        let (pool, mode) = (self.pool.clone(), self.mode);
        let span_fields = tracing::info_span!("write", pages = %span.label());
        let task = tokio::spawn(
            async move {
                let may_commit = async move {
                    match previous {
                        Some(previous) => previous.await.unwrap_or(false),
                        None => true,
                    }
                };
                let mut conn = pool.acquire().await?;
                let rows = Rows {
                    items: rows.iter().map(|(_, item)| item).collect(),
                    pages: rows.iter().map(|(page, _)| *page).collect(),
                };
                let outcome = write(&mut conn, span, &rows, &rejected, mode, may_commit).await?;
                if matches!(outcome, Outcome::Stored { .. }) {
                    let _ = committed_tx.send(true);
                }
                Ok(outcome)
            }
            .instrument(span_fields),
        );
        self.in_flight.push_back(InFlight {
            span,
            received,
            task,
        });
        Ok(finished)
    }

    /// Waits for every write in flight, oldest first.
    pub async fn finish(&mut self) -> Result<Vec<StoredPages>, WriteFailed> {
        let mut finished = Vec::with_capacity(self.in_flight.len());
        while !self.in_flight.is_empty() {
            finished.push(self.finish_oldest().await?);
        }
        Ok(finished)
    }

    async fn finish_oldest(&mut self) -> Result<StoredPages, WriteFailed> {
        let Some(write) = self.in_flight.pop_front() else {
            unreachable!("finish_oldest is only called with a write in flight")
        };
        let reason = match write.task.await {
            Ok(Ok(Outcome::Stored { inserted, refused })) => {
                return Ok(StoredPages {
                    span: write.span,
                    received: write.received,
                    inserted,
                    refused,
                })
            }
            Ok(Ok(Outcome::CursorMoved)) => WriteFailure::CursorMoved,
            Ok(Ok(Outcome::Abandoned)) => WriteFailure::EarlierWriteFailed,
            Ok(Err(err)) => WriteFailure::Database(err),
            Err(_) => WriteFailure::TaskLost,
        };
        // The writes after this one cannot commit; let them roll back
        // before the caller hears of the failure.
        for later in self.in_flight.drain(..) {
            let _ = later.task.await;
        }
        self.recent_ids.clear();
        self.newest_committed = None;
        Err(WriteFailed {
            span: write.span,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
