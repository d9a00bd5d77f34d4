//! The migrated schema has what SPEC section 2 names, and migrating is safe
//! when several containers start at once.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

/// column name -> data type, as information_schema reports it.
async fn columns(pool: &PgPool, table: &str) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = $1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// index definitions of a table.
async fn index_defs(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn assert_columns(actual: &BTreeMap<String, String>, expected: &[(&str, &str)], table: &str) {
    for (name, data_type) in expected {
        assert_eq!(
            actual.get(*name).map(String::as_str),
            Some(*data_type),
            "{table}.{name} should be {data_type}; table has {actual:?}"
        );
    }
}

/// Some index of the table covers `column` (as a key or in its predicate).
fn assert_indexed(defs: &[String], column: &str, table: &str) {
    assert!(
        defs.iter().any(|d| d.contains(&format!("({column}"))
            || d.contains(&format!(" {column} "))
            || d.contains(&format!("({column})"))),
        "{table} has no index on {column}: {defs:#?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn raw_data_has_the_spec_columns_and_indexes(pool: PgPool) {
    let cols = columns(&pool, "raw_data").await;
    assert_columns(
        &cols,
        &[
            ("id", "bigint"),
            ("inner_id", "character varying"),
            ("upstream_id", "bigint"),
            ("change_type", "character varying"),
            ("created_at", "timestamp with time zone"),
            ("data", "jsonb"),
            ("first_loaded_at", "timestamp with time zone"),
            ("last_updated_at", "timestamp with time zone"),
            ("source", "character varying"),
            ("active_status", "integer"),
            ("is_processed", "boolean"),
        ],
        "raw_data",
    );
    let defs = index_defs(&pool, "raw_data").await;
    assert!(
        defs.iter()
            .any(|d| d.contains("UNIQUE") && d.contains("(inner_id)")),
        "inner_id must be unique: {defs:#?}"
    );
    for column in ["active_status", "is_processed", "source", "last_updated_at"] {
        assert_indexed(&defs, column, "raw_data");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn is_processed_defaults_to_false_and_active_status_to_zero(pool: PgPool) {
    let (processed, active): (bool, i32) = sqlx::query_as(
        "INSERT INTO raw_data (inner_id, change_type, source) VALUES ('1', 'added', 'initial_load')
         RETURNING is_processed, active_status",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!processed);
    assert_eq!(active, 0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn raw_data_rejects_unknown_change_types_sources_and_statuses(pool: PgPool) {
    for (change_type, source, status) in [
        ("deleted", "initial_load", 0),
        ("added", "manual", 0),
        ("added", "initial_load", 2),
    ] {
        let result = sqlx::query(
            "INSERT INTO raw_data (inner_id, change_type, source, active_status) VALUES ('1', $1, $2, $3)",
        )
        .bind(change_type)
        .bind(source)
        .bind(status)
        .execute(&pool)
        .await;
        assert!(
            result.is_err(),
            "{change_type}/{source}/{status} was accepted"
        );
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn processed_data_has_typed_columns_for_every_api_filter_and_sort(pool: PgPool) {
    let cols = columns(&pool, "processed_data").await;
    assert_columns(
        &cols,
        &[
            ("inner_id", "character varying"),
            ("mark", "text"),
            ("model", "text"),
            ("year", "integer"),
            ("price", "bigint"),
            ("km_age", "integer"),
            ("engine_type", "text"),
            ("transmission_type", "text"),
            ("body_type", "text"),
            ("drive_type", "text"),
            ("city", "text"),
            ("seller_type", "text"),
            ("is_dealer", "boolean"),
            ("listed_at", "timestamp with time zone"),
            ("record", "jsonb"),
            ("is_active", "boolean"),
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
        ],
        "processed_data",
    );
    // The other extracted fields live in `record` only (migration 0018): a
    // typed copy no query reads would be written with every row.
    for dropped in ["url", "description", "images", "vin", "car_name", "gears"] {
        assert!(
            !cols.contains_key(dropped),
            "processed_data.{dropped} duplicates the record: {cols:?}"
        );
    }
    let defs = index_defs(&pool, "processed_data").await;
    assert!(
        defs.iter()
            .any(|d| d.contains("UNIQUE") && d.contains("(inner_id)")),
        "one row per inner_id: {defs:#?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_other_spec_tables_have_their_columns(pool: PgPool) {
    assert_columns(
        &columns(&pool, "api_tokens").await,
        &[
            ("id", "bigint"),
            ("token_hash", "bytea"),
            ("token_prefix", "character varying"),
            ("created_at", "timestamp with time zone"),
            ("expires_at", "timestamp with time zone"),
            ("description", "text"),
            ("last_used_at", "timestamp with time zone"),
        ],
        "api_tokens",
    );
    assert_columns(
        &columns(&pool, "operations_log").await,
        &[
            ("id", "bigint"),
            ("operation_type", "character varying"),
            ("started_at", "timestamp with time zone"),
            ("duration", "double precision"),
            ("status", "character varying"),
            ("details", "text"),
        ],
        "operations_log",
    );
    assert_columns(
        &columns(&pool, "sync_state").await,
        &[
            ("id", "bigint"),
            ("last_successful_date", "date"),
            ("last_change_id", "bigint"),
            ("updated_at", "timestamp with time zone"),
        ],
        "sync_state",
    );
    assert_indexed(
        &index_defs(&pool, "sync_state").await,
        "last_successful_date",
        "sync_state",
    );
    assert_columns(
        &columns(&pool, "initial_load_state").await,
        &[
            ("next_page", "integer"),
            ("finished_at", "timestamp with time zone"),
        ],
        "initial_load_state",
    );
}

#[sqlx::test(migrations = false)]
async fn an_empty_database_is_refused_until_migrated(pool: PgPool) {
    let err = db::schema::ensure_current(&pool).await.unwrap_err();
    assert!(
        matches!(err, db::DbError::SchemaTooOld { found: 0, .. }),
        "{err:?}"
    );
    db::migrate(&pool).await.unwrap();
    let status = db::schema::ensure_current(&pool).await.unwrap();
    assert_eq!(status.found, db::schema::needed_version());
}

#[sqlx::test(migrations = false)]
async fn concurrent_migrations_apply_each_migration_exactly_once(pool: PgPool) {
    let runs = (0..6).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { db::migrate(&pool).await })
    });
    let results = futures::future::join_all(runs).await;
    let mut applied: Vec<i64> = Vec::new();
    for result in results {
        applied.extend(result.unwrap().unwrap());
    }
    applied.sort_unstable();
    let expected = db::MIGRATOR.iter().count();
    // Whatever the interleaving, every migration ran once, by one caller:
    // the callers' reports add up to each migration once.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows as usize, expected);
    let versions: Vec<i64> = db::MIGRATOR.iter().map(|m| m.version).collect();
    assert_eq!(applied, versions, "each version reported by one caller");
    let tables: BTreeSet<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for table in [
        "raw_data",
        "processed_data",
        "api_tokens",
        "operations_log",
        "sync_state",
    ] {
        assert!(tables.contains(table), "{table} missing: {tables:?}");
    }
}
