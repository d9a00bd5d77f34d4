//! The statements sync sends, built from a `TableSpec` (whose identifiers
//! Postgres quoted). No value is ever spliced in: marks are integers, and a
//! resume key travels as the `sync.resume_key` setting (`set_config` with a
//! bound parameter), since `COPY (query)` takes no parameters.

use crate::tables::{TableSpec, TRACKING_COLUMN};

/// The setting a resume key is passed in.
pub const RESUME_KEY_SETTING: &str = "sync.resume_key";

/// Which source rows a run reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Rows none of these snapshots saw (empty: all rows).
    pub unseen_by: Vec<String>,
    /// Rows at most / above the key in the `sync.resume_key` setting.
    pub key: Option<KeyBound>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBound {
    AtMost,
    Above,
}

/// The text of a `pg_snapshot`: `xmin:xmax:xip,xip`.
pub fn is_snapshot(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b',')
}

/// `(k1, k2) > (setting[1]::type1, setting[2]::type2)`.
fn key_vs_setting(spec: &TableSpec, op: &str) -> String {
    let values = spec
        .key
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "(current_setting('{RESUME_KEY_SETTING}')::text[])[{}]::{}",
                i + 1,
                c.type_sql
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("({}) {op} ({values})", spec.key_list())
}

pub fn selection_where(spec: &TableSpec, selection: &Selection) -> String {
    let mut parts = Vec::new();
    for snapshot in &selection.unseen_by {
        // A snapshot's text is digits, colons and commas (checked by
        // `is_snapshot`); anything else is refused before any SQL is built.
        parts.push(format!(
            "{TRACKING_COLUMN} >= pg_snapshot_xmin('{snapshot}') \
             AND NOT pg_visible_in_snapshot({TRACKING_COLUMN}, '{snapshot}')"
        ));
    }
    match selection.key {
        Some(KeyBound::AtMost) => parts.push(key_vs_setting(spec, "<=")),
        Some(KeyBound::Above) => parts.push(key_vs_setting(spec, ">")),
        None => {}
    }
    if parts.is_empty() {
        "true".to_owned()
    } else {
        parts.join(" AND ")
    }
}

/// The selected rows, in key order, as binary COPY.
pub fn copy_out(spec: &TableSpec, selection: &Selection) -> String {
    format!(
        "COPY (SELECT {} FROM {} WHERE {} ORDER BY {}) TO STDOUT (FORMAT binary)",
        spec.column_list(),
        spec.qualified,
        selection_where(spec, selection),
        spec.key_list()
    )
}

pub fn count(spec: &TableSpec, selection: &Selection) -> String {
    format!(
        "SELECT count(*) FROM {} WHERE {}",
        spec.qualified,
        selection_where(spec, selection)
    )
}

/// A session's staging table for `spec`'s rows on the target.
pub fn create_staging(spec: &TableSpec, staging: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {staging}; CREATE TEMP TABLE {staging} AS SELECT {} FROM {} WITH NO DATA",
        spec.column_list(),
        spec.qualified
    )
}

/// Drops a session's staging table (a name of ours, never a user's).
pub fn drop_staging(staging: &str) -> String {
    format!("DROP TABLE IF EXISTS {staging}")
}

pub fn copy_in(spec: &TableSpec, into: &str) -> String {
    format!(
        "COPY {into} ({}) FROM STDIN (FORMAT binary)",
        spec.column_list()
    )
}

/// `(tgt.a, tgt.b) IS DISTINCT FROM (src.a, src.b)` over the non-key columns.
fn differs(spec: &TableSpec, target: &str, source: &str) -> String {
    let values: Vec<&str> = spec
        .columns
        .iter()
        .filter(|c| !spec.key.contains(c))
        .map(|c| c.ident.as_str())
        .collect();
    if values.is_empty() {
        return "false".to_owned();
    }
    let side = |alias: &str| {
        values
            .iter()
            .map(|c| format!("{alias}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "ROW({}) IS DISTINCT FROM ROW({})",
        side(target),
        side(source)
    )
}

fn key_desc(spec: &TableSpec) -> String {
    spec.key
        .iter()
        .map(|c| format!("{} DESC", c.ident))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_text_array(spec: &TableSpec) -> String {
    let items = spec
        .key
        .iter()
        .map(|c| format!("{}::text", c.ident))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ARRAY[{items}]")
}

/// Upserts the staged rows, rewriting only rows that really differ, and
/// empties the staging table: one round trip, one implicit transaction.
/// Returns (inserted, updated, the batch's greatest key as text[]).
pub fn merge(spec: &TableSpec, staging: &str) -> String {
    let cols = spec.column_list();
    let set = spec
        .columns
        .iter()
        .filter(|c| !spec.key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", c.ident))
        .collect::<Vec<_>>()
        .join(", ");
    let on_conflict = if set.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!(
            "DO UPDATE SET {set} WHERE {}",
            differs(spec, "tgt", "EXCLUDED")
        )
    };
    format!(
        "WITH up AS (
            INSERT INTO {table} AS tgt ({cols}) OVERRIDING SYSTEM VALUE
            SELECT {cols} FROM {staging}
            ON CONFLICT ({keys}) {on_conflict}
            RETURNING (xmax = 0) AS inserted
         )
         SELECT (SELECT count(*) FROM up WHERE inserted) AS inserted,
                (SELECT count(*) FROM up WHERE NOT inserted) AS updated,
                (SELECT {last} FROM {staging} ORDER BY {desc} LIMIT 1) AS last_key;
         TRUNCATE {staging}",
        table = spec.qualified,
        keys = spec.key_list(),
        last = key_text_array(spec),
        desc = key_desc(spec),
    )
}

/// What `merge` would do, writing nothing but the staging table.
pub fn dry_counts(spec: &TableSpec, staging: &str) -> String {
    let join = spec
        .key
        .iter()
        .map(|c| format!("tgt.{0} = src.{0}", c.ident))
        .collect::<Vec<_>>()
        .join(" AND ");
    let first_key = &spec.key[0].ident;
    format!(
        "SELECT count(*) FILTER (WHERE tgt.{first_key} IS NULL) AS inserted,
                count(*) FILTER (WHERE tgt.{first_key} IS NOT NULL AND {differs}) AS updated,
                (SELECT {last} FROM {staging} ORDER BY {desc} LIMIT 1) AS last_key
         FROM {staging} src LEFT JOIN {table} tgt ON {join};
         TRUNCATE {staging}",
        differs = differs(spec, "tgt", "src"),
        table = spec.qualified,
        last = key_text_array(spec),
        desc = key_desc(spec),
    )
}

/// Every key of the source, for --prune.
pub fn keys_copy_out(spec: &TableSpec) -> String {
    format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)",
        spec.key_list(),
        spec.qualified
    )
}

pub fn create_key_staging(spec: &TableSpec, staging: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {staging}; CREATE TEMP TABLE {staging} AS SELECT {} FROM {} WITH NO DATA",
        spec.key_list(),
        spec.qualified
    )
}

pub fn copy_keys_in(spec: &TableSpec, staging: &str) -> String {
    format!(
        "COPY {staging} ({}) FROM STDIN (FORMAT binary)",
        spec.key_list()
    )
}

fn not_in_keys(spec: &TableSpec, staging: &str) -> String {
    let join = spec
        .key
        .iter()
        .map(|c| format!("k.{0} = tgt.{0}", c.ident))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("NOT EXISTS (SELECT 1 FROM {staging} k WHERE {join})")
}

/// Deletes target rows whose key the source no longer has.
pub fn prune(spec: &TableSpec, staging: &str, dry_run: bool) -> String {
    let filter = not_in_keys(spec, staging);
    if dry_run {
        format!("SELECT count(*) FROM {} tgt WHERE {filter}", spec.qualified)
    } else {
        format!(
            "WITH gone AS (DELETE FROM {} tgt WHERE {filter} RETURNING 1) SELECT count(*) FROM gone",
            spec.qualified
        )
    }
}

/// An order-independent digest of a row: 64 bits of the md5 of its text.
fn row_hash(spec: &TableSpec) -> String {
    format!(
        "('x' || left(md5(ROW({})::text), 16))::bit(64)::bigint",
        spec.column_list()
    )
}

/// The bucket of a key (verify narrows a difference down to buckets).
fn bucket(spec: &TableSpec) -> String {
    format!(
        "(('x' || left(md5(ROW({})::text), 8))::bit(32)::bigint & 1023)",
        spec.key_list()
    )
}

/// Per bucket: row count and the sum of row digests.
pub fn bucket_checksums(spec: &TableSpec) -> String {
    format!(
        "SELECT {bucket}::int4 AS bucket, count(*) AS rows, sum({hash})::text AS checksum
         FROM {table} GROUP BY 1",
        bucket = bucket(spec),
        hash = row_hash(spec),
        table = spec.qualified
    )
}

/// The key and digest of every row of the given buckets.
pub fn rows_of_buckets(spec: &TableSpec) -> String {
    format!(
        "SELECT ROW({keys})::text AS key, {hash} AS hash FROM {table}
         WHERE {bucket}::int4 = ANY($1)",
        keys = spec.key_list(),
        hash = row_hash(spec),
        bucket = bucket(spec),
        table = spec.qualified
    )
}

/// Moves the sequence `$1` (a `regclass`) past the greatest value of
/// `column` in the table, unless it already is: the next id the target
/// hands out after a copy must not collide with a copied one.
pub fn advance_sequence(spec: &TableSpec, column: &str) -> String {
    format!(
        "SELECT setval($1::regclass, m) FROM (SELECT max({column})::bigint AS m FROM {table}) t
         WHERE m > coalesce(pg_sequence_last_value($1::regclass), 0)",
        table = spec.qualified
    )
}

/// The greatest key on the target (where a table copy resumes).
pub fn greatest_key(spec: &TableSpec) -> String {
    format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT 1",
        key_text_array(spec),
        spec.qualified,
        key_desc(spec)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Column;

    fn spec() -> TableSpec {
        let col = |ident: &str, type_sql: &str| Column {
            ident: ident.to_owned(),
            type_sql: type_sql.to_owned(),
        };
        TableSpec {
            name: "ref".into(),
            qualified: "ref".into(),
            columns: vec![col("a", "integer"), col("b", "text"), col("v", "jsonb")],
            key: vec![col("a", "integer"), col("b", "text")],
            tracked: true,
        }
    }

    #[test]
    fn a_resumed_read_takes_rows_past_the_key_changed_since_the_mark() {
        let selection = Selection {
            unseen_by: vec!["100:104:101".into()],
            key: Some(KeyBound::Above),
        };
        assert_eq!(
            selection_where(&spec(), &selection),
            "sync_xid >= pg_snapshot_xmin('100:104:101') AND NOT pg_visible_in_snapshot(sync_xid, '100:104:101') \
             AND (a, b) > ((current_setting('sync.resume_key')::text[])[1]::integer, \
             (current_setting('sync.resume_key')::text[])[2]::text)"
        );
    }

    #[test]
    fn only_a_snapshot_text_is_taken_as_a_mark() {
        assert!(is_snapshot("100:104:101,102"));
        assert!(!is_snapshot("1'); DROP TABLE x; --"));
    }

    #[test]
    fn the_upsert_rewrites_a_row_only_when_a_non_key_column_differs() {
        let sql = merge(&spec(), "sync_in");
        assert!(sql.contains("ON CONFLICT (a, b) DO UPDATE SET v = EXCLUDED.v WHERE ROW(tgt.v) IS DISTINCT FROM ROW(EXCLUDED.v)"), "{sql}");
    }

    #[test]
    fn a_sequence_moves_only_forward_past_the_greatest_copied_value() {
        assert_eq!(
            advance_sequence(&spec(), "a"),
            "SELECT setval($1::regclass, m) FROM (SELECT max(a)::bigint AS m FROM ref) t
         WHERE m > coalesce(pg_sequence_last_value($1::regclass), 0)"
        );
    }

    #[test]
    fn a_first_full_read_selects_every_row() {
        assert_eq!(selection_where(&spec(), &Selection::default()), "true");
    }
}
