//! `initial_load_state`: the initial load's cursor, one row. A page's rows and
//! the cursor move in the same transaction, so an interrupted load resumes at
//! the first page not stored and never stores a page twice.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::commit::Commit;
use crate::error::expect_one_row;
use crate::initial_pages::PageSpan;
use crate::DbError;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LoadState {
    pub next_page: i32,
    pub pages_stored: i32,
    pub records_stored: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub failed_pages: Vec<i32>,
}

const COLUMNS: &str =
    "next_page, pages_stored, records_stored, started_at, finished_at, failed_pages";

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
/// the feed ended and the load is finished), and the caller's transaction
/// will commit as `commit` says. Fenced on the cursor still being at
/// `span.first`: if it moved, nothing changes and `false` is returned, so
/// the caller rolls back and no page is stored twice.
pub async fn advance(
    db: &mut PgConnection,
    span: PageSpan,
    records: i64,
    commit: Commit,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE initial_load_state
            SET next_page = COALESCE($2, $1 + $3),
                pages_stored = pages_stored + $3,
                records_stored = records_stored + $4,
                finished_at = CASE WHEN $2 IS NULL THEN now() END,
                updated_at = now()
           FROM set_config('synchronous_commit', $5, true)
          WHERE id = 1 AND next_page = $1",
    )
    .bind(span.first)
    .bind(span.next)
    .bind(span.count)
    .bind(records)
    .bind(commit.setting())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A failed page was fetched again and stored: it leaves `failed_pages`.
/// Returns false when it was not there (another run stored it).
pub async fn refetched(db: &mut PgConnection, page: i32, records: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE initial_load_state
            SET failed_pages = array_remove(failed_pages, $1),
                pages_stored = pages_stored + 1,
                records_stored = records_stored + $2,
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
        assert!(
            advance(&mut conn, span(1, 1, Some(2)), 20, Commit::Synchronous)
                .await
                .unwrap()
        );
        assert!(
            !advance(&mut conn, span(1, 1, Some(2)), 20, Commit::Synchronous)
                .await
                .unwrap()
        );
        skip_failed(&mut conn, 2).await.unwrap();
        assert!(
            advance(&mut conn, span(3, 1, None), 5, Commit::Asynchronous)
                .await
                .unwrap()
        );
        let state = start(&mut conn).await.unwrap();
        assert_eq!(state.next_page, 4);
        assert_eq!(state.pages_stored, 2);
        assert_eq!(state.records_stored, 25);
        assert_eq!(state.failed_pages, vec![2]);
        assert!(state.finished_at.is_some());
    }
}
