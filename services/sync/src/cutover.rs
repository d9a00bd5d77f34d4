//! `sync cutover-check`: the last command before switching production to a
//! new database. Every table of either side, with its row count and
//! checksum on both (`verify`'s comparison), so a table written on the old
//! production that the cutover did not carry (tokens issued or revoked
//! during it) fails the check instead of going missing.

use anyhow::Context;
use db::PgPool;
use sqlx::PgConnection;

use crate::verify::{check_table, TableCheck};

/// sqlx's schema history: its rows carry install times, so only the
/// applied versions are compared.
const SCHEMA_HISTORY: &str = "_sqlx_migrations";

/// Every user table of a database (partitions count with their parent).
const LIST_TABLES: &str = include_str!("cutover_tables.sql");

/// What the check found for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableState {
    Compared(TableCheck),
    History { source: String, target: String },
    OnlyOn { side: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub table: String,
    pub state: TableState,
}

impl Finding {
    pub fn matches(&self) -> bool {
        match &self.state {
            TableState::Compared(check) => check.matches(),
            TableState::History { source, target } => source == target,
            TableState::OnlyOn { .. } => false,
        }
    }

    pub fn line(&self) -> String {
        match &self.state {
            TableState::Compared(check) => check.line(),
            TableState::History { source, target } if source == target => {
                format!("{}: identical (schema versions {source})", self.table)
            }
            TableState::History { source, target } => format!(
                "{}: DIFFERENT (schema versions {source} / {target})",
                self.table
            ),
            TableState::OnlyOn { side } => {
                format!(
                    "{}: DIFFERENT (the table exists only on the {side})",
                    self.table
                )
            }
        }
    }
}

async fn tables(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(LIST_TABLES).fetch_all(conn).await?)
}

async fn history(conn: &mut PgConnection) -> anyhow::Result<String> {
    let versions: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(version::text || CASE WHEN success THEN '' ELSE '(failed)' END, ','
                           ORDER BY version)
         FROM _sqlx_migrations",
    )
    .fetch_one(conn)
    .await?;
    Ok(versions.unwrap_or_default())
}

/// Compares every table of `source` and `target`, in name order.
pub async fn check_all(source: &PgPool, target: &PgPool) -> anyhow::Result<Vec<Finding>> {
    let mut a = source
        .acquire()
        .await
        .context("Failed to connect to the source")?;
    let mut b = target
        .acquire()
        .await
        .context("Failed to connect to the target")?;
    let ours = tables(&mut a)
        .await
        .context("Failed to list the source's tables")?;
    let theirs = tables(&mut b)
        .await
        .context("Failed to list the target's tables")?;
    let mut names: Vec<&String> = ours.iter().chain(&theirs).collect();
    names.sort();
    names.dedup();
    let mut findings = Vec::new();
    for name in names {
        let state = match (ours.contains(name), theirs.contains(name)) {
            (true, false) => TableState::OnlyOn { side: "source" },
            (false, true) => TableState::OnlyOn { side: "target" },
            _ if name == SCHEMA_HISTORY => TableState::History {
                source: history(&mut a).await?,
                target: history(&mut b).await?,
            },
            _ => TableState::Compared(
                check_table(&mut a, &mut b, name, None)
                    .await
                    .with_context(|| format!("Failed to compare {name}"))?,
            ),
        };
        let finding = Finding {
            table: name.clone(),
            state,
        };
        if finding.matches() {
            tracing::info!("{}", finding.line());
        } else {
            tracing::error!("{}", finding.line());
        }
        findings.push(finding);
    }
    Ok(findings)
}
