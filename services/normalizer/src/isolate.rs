//! Writing a batch whose upsert Postgres refused: the rows go in by halves,
//! each half under its own savepoint, until every refused record stands
//! alone. The rest of the batch commits; the refused records are returned
//! with Postgres' reason, to be recorded like records that cannot be
//! normalised. One bad record never blocks the queue behind it.
//!
//! Only the rare batch that failed comes here (it is claimed again and
//! redone this way), so the common batch pays for no savepoint.

use db::processed::{ProcessedRow, Upserted};
use db::{DbError, PgConnection};
use sqlx::Connection;

/// What the careful write did: the rows it stored, and the records Postgres
/// refused (raw id, reason).
#[derive(Debug, Default)]
pub struct Isolated {
    pub upserted: Upserted,
    pub refused: Vec<(i64, String)>,
}

/// Upserts `rows` half by half under savepoints. An error that is not a
/// refused value (a lost connection, a missing table) ends it at once.
pub async fn upsert_isolating(
    conn: &mut PgConnection,
    rows: Vec<ProcessedRow>,
) -> Result<Isolated, DbError> {
    let mut done = Isolated::default();
    let mut pending = vec![rows];
    while let Some(mut chunk) = pending.pop() {
        if chunk.is_empty() {
            continue;
        }
        let mut savepoint = conn.begin().await?;
        match db::processed::upsert(&mut savepoint, chunk.clone()).await {
            Ok(upserted) => {
                savepoint.commit().await?;
                done.upserted.created += upserted.created;
                done.upserted.updated += upserted.updated;
            }
            Err(err) if err.is_refused_value() => {
                savepoint.rollback().await?;
                if chunk.len() == 1 {
                    let reason = format!("Postgres refused the record: {}", err.database_message());
                    done.refused.push((chunk[0].raw_id, reason));
                } else {
                    let second = chunk.split_off(chunk.len() / 2);
                    pending.push(second);
                    pending.push(chunk); // the first half is tried first
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}
