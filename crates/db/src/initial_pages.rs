//! The initial load's write path (SPEC 3.1): the listings of a run of
//! `/offers` pages go into `raw_data` in one transaction with the cursor
//! that says they are stored, so a killed load resumes at the first page not
//! stored and never stores a page twice.
//!
//! [`store_initial_pages`] is one such write. [`PagePipeline`] keeps several
//! in flight on their own connections: each copies its rows while the one
//! before it is still copying, and the cursor moves (and the transaction
//! commits) strictly in page order. Postgres spends its time in the COPY
//! (parsing the JSON into jsonb, compressing it, six indexes), one CPU per
//! connection, so two writes in flight use two CPUs where one COPY uses one.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use domain::change::{OfferItem, RejectedItem};
use domain::listing::{ActiveStatus, Source};
use sqlx::{Connection, PgConnection, PgPool};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::commit::Commit;
use crate::copy::BinaryCopyWriter;
use crate::rejected::Origin;
use crate::DbError;

/// Where a run of consecutive initial-load pages sits: the first page, how
/// many pages, and the page after them (`None`: the feed ended there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSpan {
    pub first: i32,
    pub count: i32,
    pub next: Option<i32>,
}

impl PageSpan {
    /// "page 3" or "pages 3-7", for logs and errors.
    pub fn label(&self) -> String {
        if self.count <= 1 {
            format!("page {}", self.first)
        } else {
            format!("pages {}-{}", self.first, self.first + self.count - 1)
        }
    }
}

const RAW_COPY: &str = "COPY raw_data (inner_id, upstream_id, change_type, created_at, data, \
                        source, active_status, is_processed) FROM STDIN (FORMAT binary)";

/// Stores the listings of a run of pages and moves the cursor past them,
/// atomically. Listings whose `inner_id` is already stored, or repeated in
/// the run, keep their first row and write nothing. Fenced on the cursor
/// standing at `span.first`: if it does not, nothing is stored and `None`
/// is returned, so a page is never stored twice. Returns how many listings
/// were inserted. `commit` says whether to wait for the WAL flush.
pub async fn store_initial_pages(
    conn: &mut PgConnection,
    span: PageSpan,
    items: &[OfferItem],
    commit: Commit,
) -> Result<Option<u64>, DbError> {
    let mut seen = HashSet::with_capacity(items.len());
    let rows: Vec<&OfferItem> = items
        .iter()
        .filter(|item| seen.insert(item.inner_id.as_str()))
        .collect();
    match write(conn, span, &rows, &[], commit, async { true }).await? {
        Outcome::Stored(inserted) => Ok(Some(inserted)),
        Outcome::CursorMoved | Outcome::Abandoned => Ok(None),
    }
}

/// How one write ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Committed; this many listings were new.
    Stored(u64),
    /// The cursor was not at `span.first`: rolled back.
    CursorMoved,
    /// `may_commit` said no (the write before it failed): rolled back.
    Abandoned,
}

/// The items of a run of pages that could not be stored, by page.
pub type PageRejections = Vec<(i32, Vec<RejectedItem>)>;

/// One write: `rows` (no `inner_id` twice) and the pages' `rejected` items
/// go in, then — once `may_commit` resolves to true — the fenced cursor,
/// then COMMIT.
///
/// The rows go in by binary COPY, Postgres' cheapest way in (no per-row
/// statement, no conflict arbitration, no lookup first). A listing already
/// stored (pagination drift upstream, an earlier daily update, a concurrent
/// writer) makes the unique index refuse the COPY; the rows then go in by
/// `INSERT ... ON CONFLICT DO NOTHING` instead, which skips it.
async fn write(
    conn: &mut PgConnection,
    span: PageSpan,
    rows: &[&OfferItem],
    rejected: &[(i32, Vec<RejectedItem>)],
    commit: Commit,
    may_commit: impl Future<Output = bool>,
) -> Result<Outcome, DbError> {
    let mut tx = conn.begin().await?;
    let inserted = match copy_rows(&mut tx, rows).await {
        Ok(inserted) => inserted,
        Err(DbError::Conflict { .. }) => {
            tracing::debug!(
                "{} hold listings already stored: inserting with ON CONFLICT",
                span.label()
            );
            tx.rollback().await?;
            tx = conn.begin().await?;
            insert_rows_on_conflict(&mut tx, rows).await?
        }
        Err(err) => return Err(err),
    };
    for (page, items) in rejected {
        crate::rejected::record(&mut tx, Origin::OffersPage(*page), items).await?;
    }
    if !may_commit.await {
        return Ok(Outcome::Abandoned); // dropping `tx` rolls it back
    }
    // The fence comes last: should the cursor have moved (another run stored
    // these pages), the rows above are rolled back with it.
    if !crate::load_state::advance(&mut tx, span, inserted, commit).await? {
        return Ok(Outcome::CursorMoved);
    }
    tx.commit().await?;
    Ok(Outcome::Stored(u64::try_from(inserted).unwrap_or(0)))
}

async fn copy_rows(conn: &mut PgConnection, rows: &[&OfferItem]) -> Result<i64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut writer = BinaryCopyWriter::new();
    for item in rows {
        writer
            .begin_row(8)
            .text(&item.inner_id)
            .int8(item.id)
            .text(item.change_type.as_str());
        match item.created_at {
            Some(at) => writer.timestamptz(at),
            None => writer.null(),
        };
        writer
            .jsonb(item.data_json())
            .text(Source::InitialLoad.as_str())
            .int4(ActiveStatus::Active.code())
            .bool(false);
    }
    let mut copy = conn.copy_in_raw(RAW_COPY).await?;
    copy.send(writer.finish()).await?;
    let copied = copy.finish().await?;
    Ok(i64::try_from(copied).unwrap_or(i64::MAX))
}

/// Stores the listings of a page that failed before and was fetched again
/// (`INSERT ... ON CONFLICT DO NOTHING`: listings stored meanwhile are
/// kept), records its rejected items and takes it off `failed_pages`. The
/// cursor does not move. Returns how many listings were new, or `None` when
/// the page was no longer failed (nothing is written; the caller rolls back).
pub async fn store_refetched_page(
    conn: &mut PgConnection,
    page: i32,
    items: &[OfferItem],
    rejected: &[RejectedItem],
) -> Result<Option<u64>, DbError> {
    let mut seen = HashSet::with_capacity(items.len());
    let rows: Vec<&OfferItem> = items
        .iter()
        .filter(|item| seen.insert(item.inner_id.as_str()))
        .collect();
    let inserted = insert_rows_on_conflict(&mut *conn, &rows).await?;
    crate::rejected::record(&mut *conn, Origin::OffersPage(page), rejected).await?;
    if !crate::load_state::refetched(&mut *conn, page, inserted).await? {
        return Ok(None);
    }
    Ok(Some(u64::try_from(inserted).unwrap_or(0)))
}

/// The COPY's fallback: one `INSERT ... ON CONFLICT DO NOTHING`.
async fn insert_rows_on_conflict(
    conn: &mut PgConnection,
    rows: &[&OfferItem],
) -> Result<i64, DbError> {
    let mut inner_ids = Vec::with_capacity(rows.len());
    let mut upstream_ids = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut created = Vec::with_capacity(rows.len());
    let mut data = Vec::with_capacity(rows.len());
    for item in rows {
        inner_ids.push(item.inner_id.as_str());
        upstream_ids.push(item.id);
        kinds.push(item.change_type.as_str());
        created.push(item.created_at);
        data.push(item.data_json());
    }
    let done = sqlx::query(include_str!("initial_pages_insert.sql"))
        .bind(inner_ids)
        .bind(upstream_ids)
        .bind(kinds)
        .bind(created)
        .bind(data)
        .bind(Source::InitialLoad.as_str())
        .execute(conn)
        .await?;
    Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
}

/// A write the pipeline finished: its pages, the listings it was given and
/// how many of them were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPages {
    pub span: PageSpan,
    pub received: u64,
    pub inserted: u64,
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
pub struct PagePipeline {
    pool: PgPool,
    commit: Commit,
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
            commit,
            depth: depth.max(1),
            in_flight: VecDeque::new(),
            recent_ids: VecDeque::new(),
            newest_committed: None,
        }
    }

    /// Starts writing `items` (the listings of the pages `span`; a listing
    /// repeated among them, or in a write still in flight, keeps its first
    /// row). With `depth` writes already in flight it first waits for the
    /// oldest, and returns it.
    pub async fn submit(
        &mut self,
        span: PageSpan,
        items: Vec<OfferItem>,
        rejected: PageRejections,
    ) -> Result<Option<StoredPages>, WriteFailed> {
        let finished = if self.in_flight.len() >= self.depth {
            Some(self.finish_oldest().await?)
        } else {
            None
        };
        let received = items.len() as u64;
        let mut ids = HashSet::with_capacity(items.len());
        let rows: Vec<OfferItem> = items
            .into_iter()
            .filter(|item| {
                !self.recent_ids.iter().any(|r| r.contains(&item.inner_id))
                    && ids.insert(item.inner_id.clone())
            })
            .collect();
        if self.depth > 1 {
            if self.recent_ids.len() == self.depth - 1 {
                self.recent_ids.pop_front();
            }
            self.recent_ids.push_back(ids);
        }
        let (committed_tx, committed_rx) = oneshot::channel();
        let previous = self.newest_committed.replace(committed_rx);
        let (pool, commit) = (self.pool.clone(), self.commit);
        let task = tokio::spawn(async move {
            let may_commit = async move {
                match previous {
                    Some(previous) => previous.await.unwrap_or(false),
                    None => true,
                }
            };
            let mut conn = pool.acquire().await?;
            let rows: Vec<&OfferItem> = rows.iter().collect();
            let outcome = write(&mut conn, span, &rows, &rejected, commit, may_commit).await?;
            if matches!(outcome, Outcome::Stored(_)) {
                let _ = committed_tx.send(true);
            }
            Ok(outcome)
        });
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
            Ok(Ok(Outcome::Stored(inserted))) => {
                return Ok(StoredPages {
                    span: write.span,
                    received: write.received,
                    inserted,
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
mod tests {
    use super::*;
    use domain::listing::ChangeType;
    use serde_json::{json, Value};
    use sqlx::PgPool;

    fn offer(id: i64, inner: &str, data: Option<Value>) -> OfferItem {
        OfferItem {
            id,
            inner_id: inner.into(),
            change_type: ChangeType::Added,
            created_at: None,
            data: data.map(|d| serde_json::value::to_raw_value(&d).unwrap()),
        }
    }

    fn span(first: i32, count: i32, next: Option<i32>) -> PageSpan {
        PageSpan { first, count, next }
    }

    async fn xmins(pool: &PgPool) -> Vec<(String, String)> {
        sqlx::query_as("SELECT inner_id, xmin::text FROM raw_data ORDER BY inner_id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    async fn prices(pool: &PgPool) -> Vec<(String, Value)> {
        sqlx::query_as("SELECT inner_id, data->'price' FROM raw_data ORDER BY inner_id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    async fn store_one(pool: &PgPool, inner_id: &str, price: i64) {
        sqlx::query(
            "INSERT INTO raw_data (inner_id, change_type, data, source)
             VALUES ($1, 'added', jsonb_build_object('price', $2::bigint), 'initial_load')",
        )
        .bind(inner_id)
        .bind(price)
        .execute(pool)
        .await
        .unwrap();
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_run_of_pages_is_stored_with_its_cursor_atomically_and_never_twice(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        crate::load_state::start(&mut conn).await.unwrap();
        let pages = [
            offer(1, "a", Some(json!({"price": 1}))),
            offer(2, "b", None),
            offer(3, "c", Some(json!({"price": "3", "城市": "北京"}))),
        ];
        assert_eq!(
            store_initial_pages(&mut conn, span(1, 2, Some(3)), &pages, Commit::Asynchronous)
                .await
                .unwrap(),
            Some(3)
        );
        assert_eq!(
            store_initial_pages(&mut conn, span(1, 2, Some(3)), &pages, Commit::Asynchronous)
                .await
                .unwrap(),
            None
        );
        let last = [offer(4, "d", Some(json!({"price": 4})))];
        assert_eq!(
            store_initial_pages(&mut conn, span(3, 1, None), &last, Commit::Synchronous)
                .await
                .unwrap(),
            Some(1)
        );
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!(
            (state.next_page, state.pages_stored, state.records_stored),
            (4, 3, 4)
        );
        assert!(state.finished_at.is_some());
        let rows: Vec<(String, i64, Value, String, i32, bool)> = sqlx::query_as(
            "SELECT inner_id, upstream_id, data, source, active_status, is_processed
               FROM raw_data ORDER BY inner_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let initial = |id: &str, n: i64, data: Value| {
            (id.to_owned(), n, data, "initial_load".to_owned(), 0, false)
        };
        assert_eq!(
            rows,
            vec![
                initial("a", 1, json!({"price": 1})),
                initial("b", 2, json!({})),
                initial("c", 3, json!({"price": "3", "城市": "北京"})),
                initial("d", 4, json!({"price": 4})),
            ]
        );
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn listings_already_stored_or_repeated_in_the_run_keep_their_first_row(pool: PgPool) {
        store_one(&pool, "a", 1).await;
        let before = xmins(&pool).await;
        let mut conn = pool.acquire().await.unwrap();
        crate::load_state::start(&mut conn).await.unwrap();
        let page = [
            offer(5, "a", Some(json!({"price": 5}))),
            offer(6, "b", Some(json!({"price": 6}))),
            offer(7, "b", Some(json!({"price": 7}))),
        ];
        assert_eq!(
            store_initial_pages(&mut conn, span(1, 1, Some(2)), &page, Commit::Synchronous)
                .await
                .unwrap(),
            Some(1)
        );
        let after = xmins(&pool).await;
        assert_eq!(after[0], before[0], "the stored row was not rewritten");
        assert_eq!(
            prices(&pool).await,
            vec![("a".into(), json!(1)), ("b".into(), json!(6))]
        );
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!((state.next_page, state.records_stored), (2, 1));
    }

    /// Pages of 20 listings `page*100 + 0..20`; `repeat` adds the previous
    /// page's first listing again (pagination drift).
    fn page_items(page: i32, repeat: bool) -> Vec<OfferItem> {
        let mut items: Vec<OfferItem> = (0..20)
            .map(|i| {
                let n = i64::from(page) * 100 + i;
                offer(n, &n.to_string(), Some(json!({"price": n})))
            })
            .collect();
        if repeat && page > 1 {
            let n = i64::from(page - 1) * 100;
            items.push(offer(-n, &n.to_string(), Some(json!({"price": -n}))));
        }
        items
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn pipelined_writes_commit_in_page_order_and_repeats_keep_their_first_row(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        crate::load_state::start(&mut conn).await.unwrap();
        store_one(&pool, "1005", -1).await; // stored before the load: left alone
        let mut pipeline = PagePipeline::new(pool.clone(), Commit::Asynchronous, 3);
        let mut stored = Vec::new();
        for page in 1..=30 {
            let next = (page < 30).then_some(page + 1);
            stored.extend(
                pipeline
                    .submit(span(page, 1, next), page_items(page, true), Vec::new())
                    .await
                    .unwrap(),
            );
        }
        stored.extend(pipeline.finish().await.unwrap());
        let firsts: Vec<i32> = stored.iter().map(|s| s.span.first).collect();
        assert_eq!(firsts, (1..=30).collect::<Vec<_>>());
        let inserted: u64 = stored.iter().map(|s| s.inserted).sum();
        assert_eq!(inserted, 30 * 20 - 1);
        let received: u64 = stored.iter().map(|s| s.received).sum();
        assert_eq!(received, 30 * 20 + 29);
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!(
            (state.next_page, state.pages_stored, state.records_stored),
            (31, 30, 599)
        );
        assert!(state.finished_at.is_some());
        let (rows, first_rows_kept): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE (data->>'price')::bigint >= 0)
               FROM raw_data",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (rows, first_rows_kept),
            (600, 599),
            "only 1005's own row is negative"
        );
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_failed_write_rolls_back_the_writes_after_it_and_the_load_resumes_there(
        pool: PgPool,
    ) {
        let mut conn = pool.acquire().await.unwrap();
        crate::load_state::start(&mut conn).await.unwrap();
        let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
        for page in 1..=3 {
            pipeline
                .submit(
                    span(page, 1, Some(page + 1)),
                    page_items(page, false),
                    Vec::new(),
                )
                .await
                .unwrap();
        }
        pipeline.finish().await.unwrap();
        // One of page 4's listings has an `inner_id` over the column's 64
        // characters: its write fails, and page 5's, in flight behind it,
        // must roll back rather than move the cursor past page 4.
        let mut bad = page_items(4, false);
        bad[3].inner_id = "x".repeat(65);
        let first = pipeline
            .submit(span(4, 1, Some(5)), bad, Vec::new())
            .await
            .unwrap();
        assert_eq!(first, None);
        let second = pipeline
            .submit(span(5, 1, Some(6)), page_items(5, false), Vec::new())
            .await;
        let failed = match second {
            Err(failed) => failed,
            Ok(_) => pipeline.finish().await.unwrap_err(),
        };
        assert_eq!(failed.span.first, 4);
        assert!(
            matches!(failed.reason, WriteFailure::Database(_)),
            "{failed:?}"
        );
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!((state.next_page, state.records_stored), (4, 60));
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_data")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 60, "nothing of pages 4 and 5 stayed");

        // The next run resumes at page 4.
        let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
        for page in 4..=5 {
            let next = (page < 5).then_some(page + 1);
            pipeline
                .submit(span(page, 1, next), page_items(page, false), Vec::new())
                .await
                .unwrap();
        }
        pipeline.finish().await.unwrap();
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!((state.next_page, state.records_stored), (6, 100));
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_pipeline_whose_cursor_moved_under_it_stores_nothing(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        crate::load_state::start(&mut conn).await.unwrap();
        // Another run stored page 1 already.
        assert_eq!(
            store_initial_pages(
                &mut conn,
                span(1, 1, Some(2)),
                &page_items(1, false),
                Commit::Synchronous
            )
            .await
            .unwrap(),
            Some(20)
        );
        let mut pipeline = PagePipeline::new(pool.clone(), Commit::Synchronous, 2);
        pipeline
            .submit(span(1, 1, Some(2)), page_items(1, false), Vec::new())
            .await
            .unwrap();
        pipeline
            .submit(span(2, 1, Some(3)), page_items(2, false), Vec::new())
            .await
            .unwrap();
        let failed = pipeline.finish().await.unwrap_err();
        assert_eq!(failed.span.first, 1);
        assert!(
            matches!(failed.reason, WriteFailure::CursorMoved),
            "{failed:?}"
        );
        let state = crate::load_state::get(&pool).await.unwrap().unwrap();
        assert_eq!((state.next_page, state.records_stored), (2, 20));
    }
}
