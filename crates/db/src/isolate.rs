//! Writing rows that Postgres refused as a whole: they go in by halves, each
//! half under its own savepoint, until every refused row stands alone. The
//! rest is written; the refused rows come back with Postgres' reason. Where
//! the database is the only judge of a value (a jsonb escape it cannot
//! store, a NUL in text, a constraint), one bad row so costs only itself and
//! never its batch. The one helper for this: the loader's pages and the
//! worker's completions use it.
//!
//! Only a write that failed comes here, so the common write pays for no
//! savepoint. Refused means SQLSTATE class 22 (data exception), 23
//! (integrity) or 54 (program limit): retrying the same row cannot help.
//! Any other error (a lost connection, a missing table) ends the write at
//! once and is the caller's to retry.

use futures::future::BoxFuture;
use sqlx::{Connection, PgConnection};

use crate::DbError;

/// What the careful write did: one result per write that went in, and the
/// rows Postgres refused (index into the rows given, Postgres' reason).
#[derive(Debug)]
pub struct Isolated<W> {
    pub written: Vec<W>,
    pub refused: Vec<(usize, String)>,
}

/// Writes `rows` with `write`, halving under savepoints around what Postgres
/// refuses. An error that is not a refused value ends it at once.
pub async fn write_isolating<T, W>(
    conn: &mut PgConnection,
    rows: &[T],
    write: impl for<'c> Fn(&'c mut PgConnection, &'c [T]) -> BoxFuture<'c, Result<W, DbError>>,
) -> Result<Isolated<W>, DbError> {
    let mut done = Isolated {
        written: Vec::new(),
        refused: Vec::new(),
    };
    let mut pending: Vec<std::ops::Range<usize>> = Vec::new();
    pending.push(0..rows.len());
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        let mut savepoint = conn.begin().await?;
        match write(&mut savepoint, &rows[range.clone()]).await {
            Ok(written) => {
                savepoint.commit().await?;
                done.written.push(written);
            }
            Err(err) if err.is_refused_value() => {
                savepoint.rollback().await?;
                if range.len() == 1 {
                    let reason = format!("Postgres refused it: {}", err.database_message());
                    done.refused.push((range.start, reason));
                } else {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle); // the first half goes first
                }
            }
            Err(err) => return Err(err),
        }
    }
    done.refused.sort_by_key(|(index, _)| *index);
    Ok(done)
}
