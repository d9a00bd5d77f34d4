//! `sync migrate --tables a,b,c`: a full copy of whole tables between any
//! two Postgres databases whose schema already exists on the target, in key
//! order and batches, then `verify`.
//!
//! Resumable without any state table: a batch commits on the target as one
//! statement, so the target's greatest key is exactly how far the copy got;
//! a run after a kill carries on above it and sends no batch twice.
//!
//! Afterwards every sequence the table's columns own (serial, identity) on
//! the target is moved past the greatest copied value, so the first row the
//! new database writes itself (a token issued after a cutover) gets a free id.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgConnection;

use crate::run::{print_progress, TableReport};
use crate::sql::{self, KeyBound, Selection};
use crate::tables::{self, TableSpec};
use crate::transfer::{Batches, Target};

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub batch_size: usize,
    pub dry_run: bool,
    /// Walk the whole table again instead of resuming above the target's
    /// greatest key (rows already equal are compared, not rewritten).
    pub from_start: bool,
    pub progress_interval: Duration,
}

#[tracing::instrument(skip_all, fields(table = name))]
pub async fn copy_table(
    source: &mut PgConnection,
    target: &mut PgConnection,
    name: &str,
    options: &CopyOptions,
) -> anyhow::Result<TableReport> {
    let spec = tables::describe(source, name, None).await?;
    let target_spec = tables::describe(target, name, None).await?;
    tables::check_compatible(&spec, &target_spec)?;
    let resume: Option<Vec<String>> = if options.from_start {
        None
    } else {
        sqlx::query_scalar(&sql::greatest_key(&spec))
            .fetch_optional(&mut *target)
            .await
            .with_context(|| format!("Failed to read where {name} stands on the target"))?
    };
    let selection = Selection {
        unseen_by: Vec::new(),
        key: resume.as_ref().map(|_| KeyBound::Above),
    };
    if let Some(key) = &resume {
        tracing::info!("{name}: resuming above key {}", key.join(", "));
        sqlx::query("SELECT set_config($1, $2::text[]::text, false)")
            .bind(sql::RESUME_KEY_SETTING)
            .bind(key)
            .execute(&mut *source)
            .await?;
    }
    let total: i64 = sqlx::query_scalar(&sql::count(&spec, &selection))
        .fetch_one(&mut *source)
        .await?;
    let mut report = TableReport {
        table: name.to_owned(),
        ..TableReport::default()
    };
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut sink = Target::open(target, &spec, options.dry_run).await?;
    let mut batches = Batches::start(
        source,
        &sql::copy_out(&spec, &selection),
        options.batch_size,
    )
    .await?;
    while let Some(batch) = batches.next().await? {
        let outcome = sink.send(&batch, async { Ok(()) }).await?;
        report.read += i64::try_from(batch.rows).unwrap_or(i64::MAX);
        report.inserted += outcome.inserted;
        report.updated += outcome.updated;
        report.batches += 1;
        if last_print.elapsed() >= options.progress_interval {
            last_print = Instant::now();
            print_progress(name, report.read, total, started);
        }
    }
    drop(batches);
    sink.close().await?;
    print_progress(name, report.read, total, started);
    if !options.dry_run {
        advance_sequences(target, &spec)
            .await
            .with_context(|| format!("Failed to move the sequences of {name} on the target"))?;
    }
    Ok(report)
}

/// The sequences owned by `spec`'s columns on the target, each moved past
/// the column's greatest value.
async fn advance_sequences(target: &mut PgConnection, spec: &TableSpec) -> anyhow::Result<()> {
    let owned: Vec<(String, String)> = sqlx::query_as(
        "SELECT quote_ident(a.attname), s.seq
         FROM pg_attribute a
         CROSS JOIN LATERAL (SELECT pg_get_serial_sequence($1, a.attname) AS seq) s
         WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND s.seq IS NOT NULL",
    )
    .bind(&spec.qualified)
    .fetch_all(&mut *target)
    .await?;
    for (column, sequence) in owned {
        let moved: Option<i64> = sqlx::query_scalar(&sql::advance_sequence(spec, &column))
            .bind(&sequence)
            .fetch_optional(&mut *target)
            .await?;
        if let Some(value) = moved {
            tracing::info!("{}: sequence {sequence} set to {value}", spec.name);
        }
    }
    Ok(())
}
