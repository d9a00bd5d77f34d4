//! One incremental run of `sync push` (working -> production) or `sync pull`
//! (production -> working): every configured table, read under one snapshot
//! of the source, only the rows written since the table's last finished run.
//!
//! The mark is that snapshot itself: the next run sends the rows it did not
//! see (see migration 0006 for why that is commit-safe). Rows go in key order, batch by batch; after each
//! batch lands on the target the table's resume point moves on the working
//! side, so a killed run sends again at most the batch it was writing.
//!
//! Marks belong to one production (`sync_table_state.production_id`): a run
//! against any other, or with `full`, sends every row (and rewrites only
//! those that differ). A run holds its direction's lock (`lock.rs`).
//!
//! The source is read a few batches ahead of the target, and a batch's
//! resume point is written while the next batch travels (saved before that
//! one commits): neither server waits for the other.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use db::sync_tables::{self, Direction, Marks, Resume, TableState};
use db::PgPool;
use settings::SyncTable;
use sqlx::{Connection, PgConnection};
use telemetry::progress;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::copy_split::Batch;
use crate::lock::RunLock;
use crate::sql::{self, KeyBound, Selection};
use crate::tables;
use crate::transfer::{Batches, Outcome, Target};

/// Batches read from the source ahead of the one the target is taking in.
const READ_AHEAD_BATCHES: usize = 4;

/// The two databases: where loader and normaliser write, and production.
#[derive(Debug, Clone)]
pub struct Ends {
    pub working: PgPool,
    pub production: PgPool,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub batch_size: usize,
    pub dry_run: bool,
    pub prune: bool,
    /// Send every row whatever the marks say (`--full`).
    pub full: bool,
    pub progress_interval: Duration,
}

/// What a run did (or, dry, would do) to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub read: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub batches: i64,
}

impl TableReport {
    pub fn line(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would get" } else { "got" };
        format!(
            "{}: {} changed rows read; target {verb} {} inserted, {} updated, {} deleted",
            self.table,
            progress::thousands(u64::try_from(self.read).unwrap_or(0)),
            self.inserted,
            self.updated,
            self.deleted
        )
    }
}

/// Runs every table of `tables` in `direction`, holding the direction's
/// lock. Stops between batches when `shutdown` is cancelled (the state says
/// where the next run resumes).
pub async fn run(
    direction: Direction,
    ends: &Ends,
    tables: &[SyncTable],
    options: &RunOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<TableReport>> {
    let lock = RunLock::acquire(&ends.working, direction, shutdown).await?;
    let result = run_locked(direction, ends, tables, options, shutdown).await;
    lock.release().await;
    result
}

async fn run_locked(
    direction: Direction,
    ends: &Ends,
    tables: &[SyncTable],
    options: &RunOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<TableReport>> {
    let (source_pool, target_pool) = match direction {
        Direction::Push => (&ends.working, &ends.production),
        Direction::Pull => (&ends.production, &ends.working),
    };
    let mut target = target_pool
        .acquire()
        .await
        .context("Failed to connect to the target")?;
    let production_id = sync_tables::database_id(&ends.production)
        .await
        .context("Failed to read production's identity (pg_control_system)")?;
    let mut source = source_pool
        .acquire()
        .await
        .context("Failed to connect to the source")?;
    // One snapshot for every table of the run; it is the next mark.
    let mut snapshot = source
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("Failed to open the source snapshot")?;
    let result = async {
        let mark: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&mut *snapshot)
            .await
            .context("Failed to read the source snapshot")?;
        let mut reports = Vec::new();
        for table in tables {
            if shutdown.is_cancelled() {
                break;
            }
            let marks = Marks {
                direction,
                table: &table.name,
                production_id: &production_id,
            };
            let report = run_table(
                ends,
                &mut snapshot,
                &mut target,
                table,
                Run {
                    marks,
                    mark: &mark,
                    options,
                },
                shutdown,
            )
            .await
            .with_context(|| format!("Failed to {} {}", direction.as_str(), table.name))?;
            tracing::info!("{}", report.line(options.dry_run));
            reports.push(report);
        }
        anyhow::Ok(reports)
    }
    .await;
    if result.is_ok() {
        snapshot
            .commit()
            .await
            .context("Failed to end the source snapshot")?;
    } else {
        // A COPY cut short leaves the connection in no state to reuse.
        drop(snapshot);
        source.close_on_drop();
    }
    result
}

/// What a table's run needs to know besides the connections.
#[derive(Clone, Copy)]
struct Run<'a> {
    marks: Marks<'a>,
    /// The source snapshot this run reads under (the next mark).
    mark: &'a str,
    options: &'a RunOptions,
}

/// The table's state, or a fresh one when the run must be full: `--full`,
/// or marks taken against another production (or none named).
async fn usable_state(ends: &Ends, run: Run<'_>) -> anyhow::Result<TableState> {
    let Run { marks, options, .. } = run;
    let state = sync_tables::get(&ends.working, marks.direction, marks.table).await?;
    let has_marks = state.watermark.is_some() || state.resume().is_some();
    let why = if options.full {
        Some("--full".to_owned())
    } else if !has_marks {
        None
    } else {
        match &state.production_id {
            Some(id) if id == marks.production_id => None,
            Some(id) => Some(format!(
                "its marks belong to production {id}, this is {}",
                marks.production_id
            )),
            None => Some(format!(
                "its marks name no production (written before marks were bound); this is {}",
                marks.production_id
            )),
        }
    };
    let Some(why) = why else {
        return Ok(state);
    };
    tracing::warn!(
        "{}: full {} ({why}): every row is sent, rows already equal are not rewritten",
        marks.table,
        marks.direction.as_str()
    );
    if !options.dry_run {
        sync_tables::forget(&ends.working, marks)
            .await
            .context("Failed to drop the table's old marks")?;
    }
    Ok(TableState::default())
}

#[tracing::instrument(skip_all, fields(direction = run.marks.direction.as_str(), table = %table.name))]
async fn run_table(
    ends: &Ends,
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &SyncTable,
    run: Run<'_>,
    shutdown: &CancellationToken,
) -> anyhow::Result<TableReport> {
    let Run {
        marks,
        mark,
        options,
    } = run;
    let direction = marks.direction;
    let spec = tables::describe(source, &table.name, Some(&table.key)).await?;
    if !spec.tracked {
        bail!(
            "table {} has no change tracking on the source: run SELECT sync_track('{}') there",
            table.name,
            table.name
        );
    }
    let target_spec = tables::describe(target, &table.name, Some(&table.key)).await?;
    tables::check_compatible(&spec, &target_spec)?;
    let state = usable_state(ends, run).await?;
    let stored = state.watermark.iter().chain(&state.resume_watermark);
    if let Some(bad) = stored.into_iter().find(|m| !sql::is_snapshot(m)) {
        bail!(
            "sync_table_state holds {bad:?} for {}, which is not a snapshot",
            table.name
        );
    }

    // A resumed run first sends what changed below its resume key since the
    // interrupted run read, then carries on above the key.
    let mut phases = Vec::new();
    match state.resume() {
        Some(resume) => {
            set_resume_key(source, &resume.key).await?;
            let mut unseen_by: Vec<String> = state.watermark.iter().cloned().collect();
            unseen_by.push(resume.watermark.clone());
            phases.push(Selection {
                unseen_by,
                key: Some(KeyBound::AtMost),
            });
            phases.push(Selection {
                unseen_by: state.watermark.iter().cloned().collect(),
                key: Some(KeyBound::Above),
            });
        }
        None => phases.push(Selection {
            unseen_by: state.watermark.iter().cloned().collect(),
            key: None,
        }),
    }
    let mut total = 0;
    for phase in &phases {
        let n: i64 = sqlx::query_scalar(&sql::count(&spec, phase))
            .fetch_one(&mut *source)
            .await?;
        total += n;
    }

    let mut report = TableReport {
        table: table.name.clone(),
        ..TableReport::default()
    };
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut sink = Target::open(target, &spec, options.dry_run).await?;
    // A push that merges uses production's second connection too: two
    // batches merge at once, and commit in key order.
    let mut second_conn = None;
    if direction == Direction::Push && !sink.direct && !options.dry_run {
        let conn = ends
            .production
            .acquire()
            .await
            .context("Failed to open a second connection to the target")?;
        second_conn = Some(conn);
    }
    let mut second_lane = match second_conn.as_mut() {
        Some(conn) => {
            let mut lane = Target::open(conn, &spec, false).await?;
            lane.direct = false;
            Some(lane)
        }
        None => None,
    };
    let mut moves_resume = false;
    for phase in &phases {
        moves_resume |= phase.key != Some(KeyBound::AtMost);
        let batches =
            Batches::start(source, &sql::copy_out(&spec, phase), options.batch_size).await?;
        // The source is read ahead while the target takes in earlier
        // batches: both servers work at once.
        let (ahead, mut received) = mpsc::channel(READ_AHEAD_BATCHES);
        let read = batches.feed(ahead);
        let write = async {
            // A batch's resume point is written while the next batch
            // travels; it must be saved before that batch commits, so a
            // killed run sends again at most the batch it was writing.
            let start_save = |outcome: &Outcome, rows: i64| {
                if options.dry_run || !moves_resume {
                    return None;
                }
                let resume = Resume {
                    key: outcome.last_key.clone()?,
                    watermark: mark.to_owned(),
                };
                let working = ends.working.clone();
                let (table, production_id) = (table.name.clone(), marks.production_id.to_owned());
                Some(tokio::spawn(async move {
                    let marks = Marks {
                        direction,
                        table: &table,
                        production_id: &production_id,
                    };
                    sync_tables::save_resume(&working, marks, &resume, rows)
                        .await
                        .context("Failed to save the resume point")
                }))
            };
            let mut saving: Option<JoinHandle<anyhow::Result<()>>> = None;
            while let Some(first) = received.recv().await {
                let second = match second_lane {
                    Some(_) => received.recv().await,
                    None => None,
                };
                let mut sent = Vec::new();
                match (second, second_lane.as_mut()) {
                    (Some(second), Some(lane)) => {
                        let (first_saved, gate) = oneshot::channel::<anyhow::Result<()>>();
                        let before_first = saved(saving.take());
                        let first_done = async {
                            let outcome = sink.send(&first, before_first).await?;
                            let save = start_save(&outcome, rows_of(&first));
                            let _ = first_saved.send(saved(save).await);
                            anyhow::Ok(outcome)
                        };
                        let second_done = lane.send(&second, async {
                            gate.await.context("the batch before this one failed")?
                        });
                        let (first_outcome, second_outcome) = tokio::join!(first_done, second_done);
                        let (first_outcome, second_outcome) = (first_outcome?, second_outcome?);
                        saving = start_save(&second_outcome, rows_of(&second));
                        sent.push((rows_of(&first), first_outcome));
                        sent.push((rows_of(&second), second_outcome));
                    }
                    (second, _) => {
                        let outcome = sink.send(&first, saved(saving.take())).await?;
                        saving = start_save(&outcome, rows_of(&first));
                        sent.push((rows_of(&first), outcome));
                        if let Some(second) = second {
                            let outcome = sink.send(&second, saved(saving.take())).await?;
                            saving = start_save(&outcome, rows_of(&second));
                            sent.push((rows_of(&second), outcome));
                        }
                    }
                }
                for (rows, outcome) in &sent {
                    report.read += rows;
                    report.inserted += outcome.inserted;
                    report.updated += outcome.updated;
                    report.batches += 1;
                }
                if last_print.elapsed() >= options.progress_interval {
                    last_print = Instant::now();
                    print_progress(&table.name, report.read, total, started);
                }
                if shutdown.is_cancelled() {
                    saved(saving.take()).await?;
                    bail!("shutdown requested; the next run resumes after the last batch sent");
                }
            }
            saved(saving.take()).await?;
            anyhow::Ok(())
        };
        let (read, write) = tokio::join!(read, write);
        write?;
        read?;
    }
    if let Some(lane) = second_lane {
        lane.close().await?;
    }
    if report.batches > 0 {
        print_progress(&table.name, report.read, total, started);
    }
    if options.prune {
        report.deleted = sink.prune(source).await?;
    }
    sink.close().await?;
    if !options.dry_run {
        sync_tables::finish(&ends.working, marks, mark)
            .await
            .context("Failed to save the table's mark")?;
    }
    Ok(report)
}

fn rows_of(batch: &Batch) -> i64 {
    i64::try_from(batch.rows).unwrap_or(i64::MAX)
}

/// Waits for a resume point being saved, if any.
async fn saved(saving: Option<JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    match saving {
        Some(handle) => handle.await.context("the resume point's save panicked")?,
        None => Ok(()),
    }
}

async fn set_resume_key(conn: &mut PgConnection, key: &[String]) -> anyhow::Result<()> {
    sqlx::query("SELECT set_config($1, $2::text[]::text, true)")
        .bind(sql::RESUME_KEY_SETTING)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) fn print_progress(table: &str, done: i64, total: i64, started: Instant) {
    let done = u64::try_from(done).unwrap_or(0);
    tracing::info!(
        "{table}: {}",
        progress::line(
            done,
            u64::try_from(total).unwrap_or(0),
            done,
            started.elapsed()
        )
    );
}
