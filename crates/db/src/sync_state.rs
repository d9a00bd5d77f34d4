//! `sync_state`: the daily update's progress, one row per date (see
//! migration 0002). A page of changes and the date's cursor move in the same
//! transaction, so an interrupted date resumes at the first change not applied.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgExecutor};

use crate::error::expect_one_row;
use crate::DbError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DateState {
    pub sync_date: NaiveDate,
    /// Where to resume: the first change not applied yet.
    pub next_change_id: Option<i64>,
    /// The last change applied.
    pub last_change_id: Option<i64>,
    /// Set once every change of the date is applied.
    pub last_successful_date: Option<NaiveDate>,
    pub pages: i32,
    pub changes: i64,
}

impl DateState {
    pub fn is_finished(&self) -> bool {
        self.last_successful_date.is_some()
    }
}

const COLUMNS: &str =
    "sync_date, next_change_id, last_change_id, last_successful_date, pages, changes";

/// The last date fully applied.
pub async fn last_successful_date(db: impl PgExecutor<'_>) -> Result<Option<NaiveDate>, DbError> {
    let date = sqlx::query_scalar("SELECT max(last_successful_date) FROM sync_state")
        .fetch_one(db)
        .await?;
    Ok(date)
}

/// Where the next run starts: the earliest date started after the last
/// success and left unfinished, else the day after the last success; `None`
/// when no date was ever applied (the caller starts today).
pub async fn resume_date(db: &mut PgConnection) -> Result<Option<NaiveDate>, DbError> {
    let last = last_successful_date(&mut *db).await?;
    let unfinished: Option<NaiveDate> = sqlx::query_scalar(
        "SELECT min(sync_date) FROM sync_state
          WHERE last_successful_date IS NULL AND sync_date IS NOT NULL
            AND ($1::date IS NULL OR sync_date > $1)",
    )
    .bind(last)
    .fetch_one(&mut *db)
    .await?;
    Ok(unfinished.or_else(|| last.and_then(|d| d.succ_opt())))
}

pub async fn get(db: impl PgExecutor<'_>, date: NaiveDate) -> Result<Option<DateState>, DbError> {
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sync_state WHERE sync_date = $1"
    ))
    .bind(date)
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// Starts (or, with `restart`, starts over) a date at `first_change_id`.
/// A date already under way keeps its cursor unless `restart`.
pub async fn begin(
    db: impl PgExecutor<'_>,
    date: NaiveDate,
    first_change_id: i64,
    restart: bool,
) -> Result<DateState, DbError> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO sync_state (sync_date, next_change_id)
         VALUES ($1, $2)
         ON CONFLICT (sync_date) DO UPDATE
            SET next_change_id = CASE WHEN $3 OR sync_state.next_change_id IS NULL
                                      THEN EXCLUDED.next_change_id
                                      ELSE sync_state.next_change_id END,
                updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(date)
    .bind(first_change_id)
    .bind(restart)
    .fetch_one(db)
    .await?;
    Ok(row)
}

/// A page is applied: the cursor moves from `from` to `next_change_id`.
/// Fenced on the cursor still being at `from` (else `NotFound`, and the
/// caller's transaction rolls back).
pub async fn advance(
    db: &mut PgConnection,
    date: NaiveDate,
    from: i64,
    next_change_id: i64,
    last_change_id: Option<i64>,
    changes: i64,
) -> Result<(), DbError> {
    let done = sqlx::query(
        "UPDATE sync_state
            SET next_change_id = $3,
                last_change_id = COALESCE($4, last_change_id),
                pages = pages + 1,
                changes = changes + $5,
                updated_at = now()
          WHERE sync_date = $1 AND next_change_id = $2",
    )
    .bind(date)
    .bind(from)
    .bind(next_change_id)
    .bind(last_change_id)
    .bind(changes)
    .execute(db)
    .await?;
    expect_one_row(done)
}

/// Every change of `date` is applied.
pub async fn finish(db: impl PgExecutor<'_>, date: NaiveDate) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE sync_state SET last_successful_date = sync_date, updated_at = now()
          WHERE sync_date = $1",
    )
    .bind(date)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 2, d).unwrap()
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_date_resumes_from_its_cursor_and_the_next_run_starts_after_the_last_success(
        pool: PgPool,
    ) {
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(resume_date(&mut conn).await.unwrap(), None);
        begin(&mut *conn, day(3), 100, false).await.unwrap();
        advance(&mut conn, day(3), 100, 120, Some(119), 20)
            .await
            .unwrap();
        assert!(matches!(
            advance(&mut conn, day(3), 100, 120, Some(119), 20).await,
            Err(DbError::NotFound)
        ));
        let again = begin(&mut *conn, day(3), 100, false).await.unwrap();
        assert_eq!(again.next_change_id, Some(120));
        assert_eq!(resume_date(&mut conn).await.unwrap(), Some(day(3)));
        finish(&mut *conn, day(3)).await.unwrap();
        assert_eq!(resume_date(&mut conn).await.unwrap(), Some(day(4)));
        let state = get(&mut *conn, day(3)).await.unwrap().unwrap();
        assert!(state.is_finished());
        assert_eq!(
            (state.last_change_id, state.changes, state.pages),
            (Some(119), 20, 1)
        );
        let restarted = begin(&mut *conn, day(3), 100, true).await.unwrap();
        assert_eq!(restarted.next_change_id, Some(100));
    }
}
