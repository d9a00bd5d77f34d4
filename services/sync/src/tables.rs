//! What sync needs to know about a table, read from the catalog: its quoted
//! name, the columns that travel (all but `sync_xid` and generated ones) and
//! its key. Identifiers come back quoted by Postgres (`quote_ident`), so the
//! SQL built from them in `sql.rs` is safe whatever the names are.

use anyhow::{bail, Context};
use sqlx::PgConnection;

/// The change-tracking column added by `sync_track()` (migration 0006).
pub const TRACKING_COLUMN: &str = "sync_xid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Quoted identifier.
    pub ident: String,
    /// `format_type` of the column, for casts of resume keys.
    pub type_sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The name as configured: the state's key and what logs say.
    pub name: String,
    /// The `regclass` text: quoted, schema-qualified when needed.
    pub qualified: String,
    pub columns: Vec<Column>,
    pub key: Vec<Column>,
    /// Has `sync_xid` (incremental runs need it).
    pub tracked: bool,
}

impl TableSpec {
    pub fn column_list(&self) -> String {
        join(&self.columns)
    }

    pub fn key_list(&self) -> String {
        join(&self.key)
    }
}

fn join(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.ident.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `name`'s columns; `key` None takes the primary key.
pub async fn describe(
    conn: &mut PgConnection,
    name: &str,
    key: Option<&[String]>,
) -> anyhow::Result<TableSpec> {
    let qualified: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("Failed to look up table {name}"))?;
    let Some(qualified) = qualified else {
        bail!("table {name} does not exist");
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.attname::text, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)
         FROM pg_attribute a
         WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = ''
         ORDER BY a.attnum",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await
    .with_context(|| format!("Failed to read the columns of {name}"))?;
    let tracked = rows.iter().any(|(n, _, _)| n == TRACKING_COLUMN);
    let find = |wanted: &str| {
        rows.iter()
            .find(|(n, _, _)| n == wanted)
            .map(|(_, ident, type_sql)| Column {
                ident: ident.clone(),
                type_sql: type_sql.clone(),
            })
    };
    let key_names: Vec<String> = match key {
        Some(key) => key.to_vec(),
        None => sqlx::query_scalar(
            "SELECT a.attname::text
             FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = $1::regclass AND i.indisprimary
             ORDER BY k.pos",
        )
        .bind(&qualified)
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("Failed to read the primary key of {name}"))?,
    };
    if key_names.is_empty() {
        bail!("table {name} has no primary key: name its key columns");
    }
    let key = key_names
        .iter()
        .map(|k| find(k).with_context(|| format!("table {name} has no key column {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let columns = rows
        .iter()
        .filter(|(n, _, _)| n != TRACKING_COLUMN)
        .map(|(_, ident, type_sql)| Column {
            ident: ident.clone(),
            type_sql: type_sql.clone(),
        })
        .collect();
    Ok(TableSpec {
        name: name.to_owned(),
        qualified,
        columns,
        key,
        tracked,
    })
}

/// The target must have every column the source sends, with the same type.
pub fn check_compatible(source: &TableSpec, target: &TableSpec) -> anyhow::Result<()> {
    for column in &source.columns {
        match target.columns.iter().find(|c| c.ident == column.ident) {
            Some(c) if c.type_sql == column.type_sql => {}
            Some(c) => bail!(
                "table {}: column {} is {} on the source but {} on the target",
                source.name,
                column.ident,
                column.type_sql,
                c.type_sql
            ),
            None => bail!(
                "table {}: the target has no column {} (migrate its schema first)",
                source.name,
                column.ident
            ),
        }
    }
    Ok(())
}
