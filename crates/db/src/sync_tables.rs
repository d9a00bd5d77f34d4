//! `sync_table_state`: where each table's incremental push or pull stands
//! (migration 0006). Kept on the working database for both directions.
//!
//! Marks are source snapshots (`pg_snapshot`, see the migration for why);
//! they travel as their text form, `xmin:xmax:xip,...`.

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
    pub watermark: Option<String>,
    /// An unfinished run got this far (see `Resume`).
    pub resume_key: Option<Vec<String>>,
    pub resume_watermark: Option<String>,
}

impl TableState {
    pub fn resume(&self) -> Option<Resume> {
        Some(Resume {
            key: self.resume_key.clone()?,
            watermark: self.resume_watermark.clone()?,
        })
    }
}

/// Every source row with key <= `key` that the snapshot `watermark` saw is
/// already on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub key: Vec<String>,
    pub watermark: String,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    direction: Direction,
    table: &str,
) -> Result<TableState, DbError> {
    let state = sqlx::query_as(
        "SELECT watermark::text AS watermark, resume_key,
                resume_watermark::text AS resume_watermark
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
         VALUES ($1, $2, $3, $4::pg_snapshot, $5)
         ON CONFLICT (direction, table_name) DO UPDATE
         SET resume_key = EXCLUDED.resume_key, resume_watermark = EXCLUDED.resume_watermark,
             rows_sent = sync_table_state.rows_sent + EXCLUDED.rows_sent, updated_at = now()",
    )
    .bind(direction.as_str())
    .bind(table)
    .bind(&resume.key)
    .bind(&resume.watermark)
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
    watermark: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state (direction, table_name, watermark, last_success_at)
         VALUES ($1, $2, $3::pg_snapshot, now())
         ON CONFLICT (direction, table_name) DO UPDATE
         SET watermark = EXCLUDED.watermark, resume_key = NULL, resume_watermark = NULL,
             last_success_at = now(), updated_at = now()",
    )
    .bind(direction.as_str())
    .bind(table)
    .bind(watermark)
    .execute(db)
    .await?;
    Ok(())
}

/// When the oldest of `tables` last finished a run in `direction`; None when
/// one of them never did.
pub async fn last_success(
    db: impl PgExecutor<'_>,
    direction: Direction,
    tables: &[String],
) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbError> {
    let at = sqlx::query_scalar(
        "SELECT CASE WHEN count(s.last_success_at) = cardinality($2::text[])
                     THEN min(s.last_success_at) END
         FROM unnest($2::text[]) AS t(name)
         LEFT JOIN sync_table_state s ON s.direction = $1 AND s.table_name = t.name",
    )
    .bind(direction.as_str())
    .bind(tables)
    .fetch_one(db)
    .await?;
    Ok(at)
}

/// The channel the normaliser notifies when a drain that did work ends;
/// `sync serve` pushes on it.
pub const NORMALIZER_FINISHED: &str = "normalizer_finished";
