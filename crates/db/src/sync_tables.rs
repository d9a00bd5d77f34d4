//! `sync_table_state`: where each table's incremental push or pull stands
//! (migration 0006). Kept on the working database for both directions.
//!
//! Marks are `xid8` values (see the migration for why); they travel as
//! `bigint` here, which holds any transaction id a cluster will reach.

use sqlx::PgExecutor;

use crate::DbError;

/// Which way a table travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Push,
    Pull,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct TableState {
    /// The source snapshot's xmin of the last finished run; None: never.
    pub watermark: Option<i64>,
    /// An unfinished run got this far (see `Resume`).
    pub resume_key: Option<Vec<String>>,
    pub resume_watermark: Option<i64>,
}

impl TableState {
    pub fn resume(&self) -> Option<Resume> {
        Some(Resume {
            key: self.resume_key.clone()?,
            watermark: self.resume_watermark?,
        })
    }
}

/// Every source row with key <= `key` whose change mark is below
/// `watermark` is already on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub key: Vec<String>,
    pub watermark: i64,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    direction: Direction,
    table: &str,
) -> Result<TableState, DbError> {
    let state = sqlx::query_as(
        "SELECT watermark::text::bigint AS watermark, resume_key,
                resume_watermark::text::bigint AS resume_watermark
         FROM sync_table_state WHERE direction = $1 AND table_name = $2",
    )
    .bind(direction.as_str())
    .bind(table)
    .fetch_optional(db)
    .await?;
    Ok(state.unwrap_or_default())
}

/// A batch is on the target: remember how far the run got.
pub async fn save_resume(
    db: impl PgExecutor<'_>,
    direction: Direction,
    table: &str,
    resume: &Resume,
    rows: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state (direction, table_name, resume_key, resume_watermark, rows_sent)
         VALUES ($1, $2, $3, $4::text::xid8, $5)
         ON CONFLICT (direction, table_name) DO UPDATE
         SET resume_key = EXCLUDED.resume_key, resume_watermark = EXCLUDED.resume_watermark,
             rows_sent = sync_table_state.rows_sent + EXCLUDED.rows_sent, updated_at = now()",
    )
    .bind(direction.as_str())
    .bind(table)
    .bind(&resume.key)
    .bind(resume.watermark.to_string())
    .bind(rows)
    .execute(db)
    .await?;
    Ok(())
}

/// The run finished: the next one starts from `watermark`.
pub async fn finish(
    db: impl PgExecutor<'_>,
    direction: Direction,
    table: &str,
    watermark: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state (direction, table_name, watermark, last_success_at)
         VALUES ($1, $2, $3::text::xid8, now())
         ON CONFLICT (direction, table_name) DO UPDATE
         SET watermark = EXCLUDED.watermark, resume_key = NULL, resume_watermark = NULL,
             last_success_at = now(), updated_at = now()",
    )
    .bind(direction.as_str())
    .bind(table)
    .bind(watermark.to_string())
    .execute(db)
    .await?;
    Ok(())
}
