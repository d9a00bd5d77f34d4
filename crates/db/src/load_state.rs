//! `initial_load_state`: the initial load's cursor, one row. A page's rows and
//! the cursor move in the same transaction, so an interrupted load resumes at
//! the first page not stored and never stores a page twice.
//!
//! The load ends in two steps: the cursor reaches the end of the feed
//! (`feed_ended_at`), then it is finished (`finished_at`) once no failed page
//! remains, or after a given number of rounds of fetching them again.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::error::expect_one_row;
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

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LoadState {
    pub next_page: i32,
    pub pages_stored: i32,
    pub records_stored: i64,
    pub started_at: DateTime<Utc>,
    /// The load is over: no failed page remains, or the rounds ran out.
    pub finished_at: Option<DateTime<Utc>>,
    /// Pages that failed every attempt and are not stored yet.
    pub failed_pages: Vec<i32>,
    /// The cursor reached the end of the feed.
    pub feed_ended_at: Option<DateTime<Utc>>,
    /// Rounds of fetching the failed pages again since the feed ended.
    pub refetch_rounds: i32,
}

const COLUMNS: &str = "next_page, pages_stored, records_stored, started_at, finished_at, \
                       failed_pages, feed_ended_at, refetch_rounds";

/// The cursor, or `None` when no initial load ever started.
pub async fn get(db: impl PgExecutor<'_>) -> Result<Option<LoadState>, DbError> {
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM initial_load_state WHERE id = 1"
    ))
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// The cursor, created at page 1 if the load never started.
pub async fn start(db: &mut PgConnection) -> Result<LoadState, DbError> {
    sqlx::query("INSERT INTO initial_load_state (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
        .execute(&mut *db)
        .await?;
    let state = get(&mut *db).await?.ok_or(DbError::NotFound)?;
    Ok(state)
}

/// The pages of `span` are stored: the cursor moves to `span.next` (`None`:
/// the feed ended, and the load is finished unless pages failed). Fenced on
/// the cursor still being at `span.first`: if it moved, nothing changes and
/// `false` is returned, so the caller rolls back and no page is stored
/// twice. The caller's transaction commits as its mode says
/// (`crate::commit`).
pub async fn advance(db: &mut PgConnection, span: PageSpan, records: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE initial_load_state
            SET next_page = COALESCE($2, $1 + $3),
                pages_stored = pages_stored + $3,
                records_stored = records_stored + $4,
                feed_ended_at = CASE WHEN $2 IS NULL THEN now() END,
                finished_at = CASE WHEN $2 IS NULL AND cardinality(failed_pages) = 0
                                   THEN now() END,
                updated_at = now()
          WHERE id = 1 AND next_page = $1",
    )
    .bind(span.first)
    .bind(span.next)
    .bind(span.count)
    .bind(records)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A failed page was fetched again and stored: it leaves `failed_pages`
/// (the last one to leave after the end of the feed finishes the load).
/// Returns false when it was not there (another run stored it).
pub async fn refetched(db: &mut PgConnection, page: i32, records: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE initial_load_state
            SET failed_pages = array_remove(failed_pages, $1),
                pages_stored = pages_stored + 1,
                records_stored = records_stored + $2,
                finished_at = CASE
                    WHEN finished_at IS NULL AND feed_ended_at IS NOT NULL
                         AND cardinality(array_remove(failed_pages, $1)) = 0 THEN now()
                    ELSE finished_at END,
                updated_at = now()
          WHERE id = 1 AND $1 = ANY(failed_pages)",
    )
    .bind(page)
    .bind(records)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Page `page` failed every attempt: remember it and move on to `page + 1`.
pub async fn skip_failed(db: &mut PgConnection, page: i32) -> Result<(), DbError> {
    let done = sqlx::query(
        "UPDATE initial_load_state
            SET next_page = $1 + 1,
                failed_pages = array_append(failed_pages, $1),
                updated_at = now()
          WHERE id = 1 AND next_page = $1",
    )
    .bind(page)
    .execute(db)
    .await?;
    expect_one_row(done)
}

/// A round of fetching the failed pages again is over. Once the feed has
/// ended, the load is finished when no failed page remains or this was round
/// `max_rounds`; the pages still failed are then missing (later runs keep
/// trying them). Returns the state after the round.
pub async fn end_round(db: &mut PgConnection, max_rounds: i32) -> Result<LoadState, DbError> {
    sqlx::query(
        "UPDATE initial_load_state
            SET refetch_rounds = refetch_rounds + 1,
                finished_at = CASE
                    WHEN cardinality(failed_pages) = 0 OR refetch_rounds + 1 >= $1 THEN now() END,
                updated_at = now()
          WHERE id = 1 AND feed_ended_at IS NOT NULL AND finished_at IS NULL",
    )
    .bind(max_rounds)
    .execute(&mut *db)
    .await?;
    get(db).await?.ok_or(DbError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    fn span(first: i32, count: i32, next: Option<i32>) -> PageSpan {
        PageSpan { first, count, next }
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn the_cursor_starts_at_page_one_and_advances_only_from_where_it_stands(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(get(&mut *conn).await.unwrap(), None);
        let state = start(&mut conn).await.unwrap();
        assert_eq!((state.next_page, state.pages_stored), (1, 0));
        assert!(advance(&mut conn, span(1, 1, Some(2)), 20).await.unwrap());
        assert!(!advance(&mut conn, span(1, 1, Some(2)), 20).await.unwrap());
        skip_failed(&mut conn, 2).await.unwrap();
        assert!(advance(&mut conn, span(3, 1, None), 5).await.unwrap());
        let state = start(&mut conn).await.unwrap();
        assert_eq!(state.next_page, 4);
        assert_eq!(state.pages_stored, 2);
        assert_eq!(state.records_stored, 25);
        assert_eq!(state.failed_pages, vec![2]);
        assert!(state.feed_ended_at.is_some());
        assert!(state.finished_at.is_none(), "page 2 is still missing");
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn the_load_finishes_when_no_failed_page_remains_or_the_rounds_run_out(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        start(&mut conn).await.unwrap();
        skip_failed(&mut conn, 1).await.unwrap();
        skip_failed(&mut conn, 2).await.unwrap();
        let end = span(3, 1, None);
        assert!(advance(&mut conn, end, 20).await.unwrap());
        let state = end_round(&mut conn, 3).await.unwrap();
        assert_eq!((state.refetch_rounds, state.finished_at), (1, None));
        assert!(refetched(&mut conn, 1, 20).await.unwrap());
        assert!(get(&mut *conn)
            .await
            .unwrap()
            .unwrap()
            .finished_at
            .is_none());
        end_round(&mut conn, 3).await.unwrap();
        let state = end_round(&mut conn, 3).await.unwrap();
        assert_eq!(state.refetch_rounds, 3);
        assert!(state.finished_at.is_some(), "three rounds ran out");
        assert_eq!(state.failed_pages, vec![2]);
        // A later round changes nothing; the page still comes in later.
        assert_eq!(end_round(&mut conn, 3).await.unwrap().refetch_rounds, 3);
        assert!(refetched(&mut conn, 2, 20).await.unwrap());
        let state = get(&mut *conn).await.unwrap().unwrap();
        assert_eq!((state.records_stored, state.pages_stored), (60, 3));
        assert!(state.failed_pages.is_empty());

        // The last failed page coming back finishes a load at once.
        sqlx::query("TRUNCATE initial_load_state")
            .execute(&pool)
            .await
            .unwrap();
        start(&mut conn).await.unwrap();
        skip_failed(&mut conn, 1).await.unwrap();
        assert!(advance(&mut conn, span(2, 1, None), 20).await.unwrap());
        assert!(refetched(&mut conn, 1, 20).await.unwrap());
        assert!(get(&mut *conn)
            .await
            .unwrap()
            .unwrap()
            .finished_at
            .is_some());
    }
}
