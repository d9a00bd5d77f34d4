//! `offer_refresh` tasks write the fetched listing into `raw_data` the way
//! the daily update writes a page (db::raw: lock the rows, fold in pure
//! domain code, one upsert statement, NOTIFY the normaliser), inside the
//! completer's transaction, only for claims whose completion was accepted.

use std::collections::HashSet;

use db::{DbError, PgConnection};
use domain::fleet::TaskKind;

use crate::done::Done;
use crate::outcome::Outcome;

pub async fn write(
    conn: &mut PgConnection,
    batch: &[Done],
    completed: &[i64],
    gone: &[i64],
) -> Result<(), DbError> {
    let accepted: HashSet<i64> = completed.iter().chain(gone).copied().collect();
    let refreshed: Vec<(&str, Option<&serde_json::Map<String, serde_json::Value>>)> = batch
        .iter()
        .filter(|d| d.task.kind == TaskKind::OfferRefresh && accepted.contains(&d.task.id))
        .filter_map(|d| match &d.outcome {
            Outcome::Fetched {
                listing: Some(l), ..
            } => Some((d.task.target.as_str(), Some(l))),
            Outcome::NotFound => Some((d.task.target.as_str(), None)),
            _ => None,
        })
        .collect();
    if refreshed.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = refreshed.iter().map(|(id, _)| *id).collect();
    let mut stored = db::raw::lock_states(conn, &ids).await?;
    let rows: Vec<_> = refreshed
        .into_iter()
        .filter_map(|(id, fetched)| {
            domain::refresh::refresh(stored.remove(id), fetched.cloned())
                .map(|row| (id.to_owned(), row))
        })
        .collect();
    let written = db::raw::upsert_states(&mut *conn, &rows).await?;
    if written.inserted + written.updated > 0 {
        db::raw::notify_changed(&mut *conn, "worker").await?;
    }
    Ok(())
}
