//! The target side of a transfer: batches of binary COPY rows land in a
//! session-local staging table, then one statement upserts them, rewriting
//! only rows that really differ (or, on a dry run, only counts what it would
//! do). Five round trips per batch: COPY start, COPY data, BEGIN, merge,
//! COMMIT (the merge waits for its turn to commit, see `send`).
//!
//! Into a target table that is empty when the transfer opens (a first, full
//! push) there is nothing to compare against: batches are COPYed straight
//! into it, which saves writing every row twice. Each COPY is still one
//! statement, so a batch lands whole or not at all, and the target's
//! greatest key afterwards is the batch's last key (rows go in key order).

use std::future::Future;

use anyhow::Context;
use futures::StreamExt;
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::mpsc;

use crate::copy_split::{Batch, Splitter};
use crate::sql;
use crate::tables::TableSpec;

/// What one batch did (or would do) on the target.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub inserted: i64,
    pub updated: i64,
    /// The batch's greatest key, as text.
    pub last_key: Option<Vec<String>>,
}

pub struct Target<'a> {
    conn: &'a mut PgConnection,
    spec: &'a TableSpec,
    staging: String,
    dry_run: bool,
    /// COPY batches straight into the (empty at open) target table.
    pub direct: bool,
}

impl<'a> Target<'a> {
    pub async fn open(
        conn: &'a mut PgConnection,
        spec: &'a TableSpec,
        dry_run: bool,
    ) -> anyhow::Result<Self> {
        let staging = "sync_staging".to_owned();
        sqlx::raw_sql(&sql::create_staging(spec, &staging))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("Failed to create the staging table for {}", spec.name))?;
        let direct = !dry_run
            && sqlx::query_scalar::<_, Option<Vec<String>>>(&sql::greatest_key(spec))
                .fetch_optional(&mut *conn)
                .await
                .with_context(|| format!("Failed to see whether {} is empty", spec.name))?
                .is_none();
        Ok(Self {
            conn,
            spec,
            staging,
            dry_run,
            direct,
        })
    }

    /// Sends `batch`; `before_commit` must end before the batch can commit
    /// (it runs while the target takes in and merges the rows).
    pub async fn send(
        &mut self,
        batch: &Batch,
        before_commit: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<Outcome> {
        let into = if self.direct {
            &self.spec.qualified
        } else {
            &self.staging
        };
        let mut copy = self
            .conn
            .copy_in_raw(&sql::copy_in(self.spec, into))
            .await
            .with_context(|| format!("Failed to start the COPY into {}", self.spec.name))?;
        copy.send(batch.payload.clone()).await?;
        if self.direct {
            before_commit.await?;
            copy.finish()
                .await
                .with_context(|| format!("Failed to COPY a batch of {}", self.spec.name))?;
            let last_key = sqlx::query_scalar(&sql::greatest_key(self.spec))
                .fetch_optional(&mut *self.conn)
                .await
                .with_context(|| {
                    format!("Failed to read the last key sent of {}", self.spec.name)
                })?;
            return Ok(Outcome {
                inserted: i64::try_from(batch.rows).unwrap_or(i64::MAX),
                updated: 0,
                last_key,
            });
        }
        copy.finish()
            .await
            .with_context(|| format!("Failed to COPY a batch of {}", self.spec.name))?;
        if self.dry_run {
            before_commit.await?;
            let row = sqlx::raw_sql(&sql::dry_counts(self.spec, &self.staging))
                .fetch_one(&mut *self.conn)
                .await
                .with_context(|| format!("Failed to count a batch of {}", self.spec.name))?;
            return outcome(&row);
        }
        // The merge does its work at once and commits once `before_commit`
        // ended (another connection may be merging the batch before). A
        // failure drops the transaction, which rolls it back.
        let mut tx = self
            .conn
            .begin()
            .await
            .with_context(|| format!("Failed to begin a batch of {}", self.spec.name))?;
        let row = sqlx::raw_sql(&sql::merge(self.spec, &self.staging))
            .fetch_one(&mut *tx)
            .await
            .with_context(|| format!("Failed to upsert a batch of {}", self.spec.name))?;
        let outcome = outcome(&row)?;
        before_commit.await?;
        tx.commit()
            .await
            .with_context(|| format!("Failed to commit a batch of {}", self.spec.name))?;
        Ok(outcome)
    }

    /// Deletes (or counts, on a dry run) target rows whose key is not in
    /// `source_keys`, a binary COPY stream of the source's keys.
    pub async fn prune(&mut self, source: &mut PgConnection) -> anyhow::Result<i64> {
        let keys = "sync_keys";
        sqlx::raw_sql(&sql::create_key_staging(self.spec, keys))
            .execute(&mut *self.conn)
            .await?;
        let mut copy = self
            .conn
            .copy_in_raw(&sql::copy_keys_in(self.spec, keys))
            .await?;
        let mut stream = source
            .copy_out_raw(&sql::keys_copy_out(self.spec))
            .await
            .with_context(|| format!("Failed to read the keys of {}", self.spec.name))?;
        while let Some(chunk) = stream.next().await {
            copy.send(chunk?).await?;
        }
        drop(stream);
        copy.finish().await?;
        let deleted: i64 = sqlx::query_scalar(&sql::prune(self.spec, keys, self.dry_run))
            .fetch_one(&mut *self.conn)
            .await
            .with_context(|| format!("Failed to prune {}", self.spec.name))?;
        sqlx::raw_sql(&sql::drop_staging(keys))
            .execute(&mut *self.conn)
            .await?;
        Ok(deleted)
    }

    pub async fn close(self) -> anyhow::Result<()> {
        sqlx::raw_sql(&sql::drop_staging(&self.staging))
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

fn outcome(row: &sqlx::postgres::PgRow) -> anyhow::Result<Outcome> {
    Ok(Outcome {
        inserted: row.try_get("inserted")?,
        updated: row.try_get("updated")?,
        last_key: row.try_get("last_key")?,
    })
}

/// Reads a `COPY ... TO STDOUT (FORMAT binary)` from the source and hands
/// it out in batches, in order.
pub struct Batches<'c> {
    stream: futures::stream::BoxStream<'c, sqlx::Result<bytes::Bytes>>,
    splitter: Option<Splitter>,
    ready: std::collections::VecDeque<Batch>,
}

impl<'c> Batches<'c> {
    pub async fn start(
        source: &'c mut PgConnection,
        copy_out: &str,
        batch_size: usize,
    ) -> anyhow::Result<Self> {
        let stream = source
            .copy_out_raw(copy_out)
            .await
            .context("Failed to start reading the source")?;
        Ok(Self {
            stream,
            splitter: Some(Splitter::new(batch_size)),
            ready: std::collections::VecDeque::new(),
        })
    }

    /// Hands every batch to `out` in order; stops quietly when `out` is
    /// closed (its reader gave up and reports why).
    pub async fn feed(mut self, out: mpsc::Sender<Batch>) -> anyhow::Result<()> {
        while let Some(batch) = self.next().await? {
            if out.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    pub async fn next(&mut self) -> anyhow::Result<Option<Batch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            let Some(splitter) = self.splitter.as_mut() else {
                return Ok(None);
            };
            match self.stream.next().await {
                Some(chunk) => {
                    let chunk = chunk.context("Failed to read the source")?;
                    self.ready.extend(splitter.push(&chunk)?);
                }
                None => {
                    let splitter = self.splitter.take().expect("checked above");
                    self.ready.extend(splitter.finish()?);
                }
            }
        }
    }
}
