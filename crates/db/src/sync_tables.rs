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
    /// The production database the marks were taken against
    /// (`<system_identifier>/<database>`, see migration 0014); None: unknown.
    pub production_id: Option<String>,
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
                resume_watermark::text AS resume_watermark, production_id
         FROM sync_table_state WHERE direction = $1 AND table_name = $2",
    )
    .bind(direction.as_str())
    .bind(table)
    .fetch_optional(db)
    .await?;
    Ok(state.unwrap_or_default())
}

/// Where a table's marks apply: the direction, the table and the production
/// database (`<system_identifier>/<database>`) they were taken against.
#[derive(Debug, Clone, Copy)]
pub struct Marks<'a> {
    pub direction: Direction,
    pub table: &'a str,
    pub production_id: &'a str,
}

/// A batch is on the target: remember how far the run got.
pub async fn save_resume(
    db: impl PgExecutor<'_>,
    marks: Marks<'_>,
    resume: &Resume,
    rows: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state
             (direction, table_name, resume_key, resume_watermark, rows_sent, production_id)
         VALUES ($1, $2, $3, $4::pg_snapshot, $5, $6)
         ON CONFLICT (direction, table_name) DO UPDATE
         SET resume_key = EXCLUDED.resume_key, resume_watermark = EXCLUDED.resume_watermark,
             production_id = EXCLUDED.production_id,
             rows_sent = sync_table_state.rows_sent + EXCLUDED.rows_sent, updated_at = now()",
    )
    .bind(marks.direction.as_str())
    .bind(marks.table)
    .bind(&resume.key)
    .bind(&resume.watermark)
    .bind(rows)
    .bind(marks.production_id)
    .execute(db)
    .await?;
    Ok(())
}

/// A full run starts: the table's marks (of whichever production) are
/// dropped, so a run killed before it finished resumes as a full one.
pub async fn forget(db: impl PgExecutor<'_>, marks: Marks<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state (direction, table_name, production_id)
         VALUES ($1, $2, $3)
         ON CONFLICT (direction, table_name) DO UPDATE
         SET watermark = NULL, resume_key = NULL, resume_watermark = NULL,
             production_id = EXCLUDED.production_id, updated_at = now()",
    )
    .bind(marks.direction.as_str())
    .bind(marks.table)
    .bind(marks.production_id)
    .execute(db)
    .await?;
    Ok(())
}

/// The run finished: the next one starts from `watermark`.
pub async fn finish(
    db: impl PgExecutor<'_>,
    marks: Marks<'_>,
    watermark: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sync_table_state
             (direction, table_name, watermark, last_success_at, production_id)
         VALUES ($1, $2, $3::pg_snapshot, now(), $4)
         ON CONFLICT (direction, table_name) DO UPDATE
         SET watermark = EXCLUDED.watermark, resume_key = NULL, resume_watermark = NULL,
             production_id = EXCLUDED.production_id,
             last_success_at = now(), updated_at = now()",
    )
    .bind(marks.direction.as_str())
    .bind(marks.table)
    .bind(watermark)
    .bind(marks.production_id)
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

/// The database `db` is, as marks name it: `<system_identifier>/<database>`.
/// The system identifier is unique per cluster (initdb), the name per
/// database within it.
pub async fn database_id(db: impl PgExecutor<'_>) -> Result<String, DbError> {
    let id = sqlx::query_scalar(
        "SELECT (SELECT system_identifier FROM pg_control_system())::text || '/' || current_database()",
    )
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// The session advisory lock a run in `direction` holds on the working
/// database for its whole length (two-key form: class, direction), so a
/// manual push and `sync serve`'s never interleave.
pub const RUN_LOCK_CLASS: i32 = 0x7379_6e63; // "sync"

pub const fn run_lock_key(direction: Direction) -> i32 {
    match direction {
        Direction::Push => 1,
        Direction::Pull => 2,
    }
}

/// The channel the normaliser notifies when a drain that did work ends;
/// `sync serve` pushes on it.
pub const NORMALIZER_FINISHED: &str = "normalizer_finished";
