//! `sync verify`: per table, the row count and an order-independent
//! checksum of the contents on both sides (the sum of a 64-bit digest of
//! every row's text). Where they differ, the keys are split into 1,024
//! buckets by a hash of the key; only the rows of differing buckets are
//! compared one by one, to name a sample of the keys that differ.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use sqlx::PgConnection;

use crate::sql;
use crate::tables::{self, TableSpec};

/// Keys named per differing table.
const SAMPLE: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: String,
    pub source_rows: i64,
    pub target_rows: i64,
    pub source_checksum: String,
    pub target_checksum: String,
    /// Up to 10 keys that are missing, extra or different on the target.
    pub sample: Vec<String>,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }

    pub fn line(&self) -> String {
        if self.matches() {
            format!(
                "{}: identical ({} rows, checksum {})",
                self.table, self.source_rows, self.source_checksum
            )
        } else {
            format!(
                "{}: DIFFERENT (source {} rows, target {} rows; checksums {} / {}); keys that differ: {}",
                self.table,
                self.source_rows,
                self.target_rows,
                self.source_checksum,
                self.target_checksum,
                self.sample.join(" ")
            )
        }
    }
}

type Buckets = HashMap<i32, (i64, String)>;

async fn buckets(conn: &mut PgConnection, spec: &TableSpec) -> anyhow::Result<Buckets> {
    let rows: Vec<(i32, i64, String)> = sqlx::query_as(&sql::bucket_checksums(spec))
        .fetch_all(conn)
        .await
        .with_context(|| format!("Failed to checksum {}", spec.name))?;
    Ok(rows.into_iter().map(|(b, n, sum)| (b, (n, sum))).collect())
}

async fn rows_of(
    conn: &mut PgConnection,
    spec: &TableSpec,
    buckets: &[i32],
) -> anyhow::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql::rows_of_buckets(spec))
        .bind(buckets)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Compares `name` on both sides; `key` None takes the primary key.
#[tracing::instrument(skip_all, fields(table = name))]
pub async fn check_table(
    source: &mut PgConnection,
    target: &mut PgConnection,
    name: &str,
    key: Option<&[String]>,
) -> anyhow::Result<TableCheck> {
    // Row text must not depend on the sessions' settings.
    for conn in [&mut *source, &mut *target] {
        sqlx::raw_sql("SET TIME ZONE 'UTC'; SET extra_float_digits = 1; SET DateStyle = 'ISO'")
            .execute(conn)
            .await?;
    }
    let spec = tables::describe(source, name, key).await?;
    let target_spec = tables::describe(target, name, key).await?;
    tables::check_compatible(&spec, &target_spec)?;
    let ours = buckets(source, &spec).await?;
    let theirs = buckets(target, &spec).await?;
    let total = |b: &Buckets| -> (i64, String) {
        let rows = b.values().map(|(n, _)| n).sum();
        let sum: i128 = b
            .values()
            .map(|(_, s)| s.parse::<i128>().unwrap_or(0))
            .sum();
        (rows, format!("{:016x}", sum as u64))
    };
    let (source_rows, source_checksum) = total(&ours);
    let (target_rows, target_checksum) = total(&theirs);
    let mut check = TableCheck {
        table: name.to_owned(),
        source_rows,
        target_rows,
        source_checksum,
        target_checksum,
        sample: Vec::new(),
    };
    let differing: Vec<i32> = ours
        .keys()
        .chain(theirs.keys())
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|b| ours.get(b) != theirs.get(b))
        .collect();
    if !differing.is_empty() {
        // The checksum is 64 bits of a sum; a difference in any bucket counts
        // even if the totals happened to agree.
        if check.matches() {
            check.target_checksum.push('*');
        }
        let a = rows_of(source, &spec, &differing).await?;
        let b = rows_of(target, &spec, &differing).await?;
        let mut keys: BTreeSet<&String> = BTreeSet::new();
        for (key, hash) in &a {
            if b.get(key) != Some(hash) {
                keys.insert(key);
            }
        }
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
        check.sample = keys.into_iter().take(SAMPLE).cloned().collect();
    }
    Ok(check)
}
