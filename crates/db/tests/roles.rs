//! Each service's role (migration 0015), against a real Postgres: a
//! statement the service needs succeeds, and statements it must never run
//! fail with a permission error (SQLSTATE 42501). The test's session takes
//! the role with `SET ROLE`, so the server checks exactly that role's grants.

use std::time::Duration;

use chrono::Utc;
use domain::fleet::TaskKind;
use domain::operation::{OperationStatus, OperationType};
use sqlx::{Connection, PgConnection, PgPool};

/// A session of its own acting as `role`.
async fn as_role(pool: &PgPool, role: &str) -> PgConnection {
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// `sql` fails with "permission denied" as the session's role.
async fn denied(conn: &mut PgConnection, sql: &str) {
    let err = sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .expect_err(&format!("{sql} was allowed"));
    let code = err
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
}

async fn raw_row(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         VALUES ('r1', 'added', now(), '{\"inner_id\": \"r1\"}', 'initial_load', 0) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_loader_writes_raw_data_and_its_state_but_not_the_catalogue_or_tokens(pool: PgPool) {
    let mut loader = as_role(&pool, "carfeed_loader").await;
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         VALUES ('l1', 'added', now(), '{}', 'initial_load', 0)
         ON CONFLICT (inner_id) DO UPDATE SET data = EXCLUDED.data",
    )
    .execute(&mut loader)
    .await
    .unwrap();
    db::load_state::start(&mut loader).await.unwrap();
    db::operations::record(
        &mut loader,
        OperationType::DataFetch,
        Utc::now(),
        OperationStatus::Ok,
        "",
    )
    .await
    .unwrap();
    db::schema::status(&mut loader).await.unwrap();
    denied(&mut loader, "SELECT * FROM processed_data").await;
    denied(&mut loader, "SELECT * FROM api_tokens").await;
    denied(&mut loader, "DELETE FROM raw_data").await;
    denied(&mut loader, "SELECT * FROM proxies").await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_normaliser_marks_raw_rows_and_writes_the_catalogue_but_no_raw_row_or_token(
    pool: PgPool,
) {
    let id = raw_row(&pool).await;
    let mut normalizer = as_role(&pool, "carfeed_normalizer").await;
    sqlx::query("SELECT id FROM raw_data WHERE id = $1 FOR UPDATE SKIP LOCKED")
        .bind(id)
        .execute(&mut normalizer)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO processed_data (inner_id, raw_id, mark, price, record, is_active)
         VALUES ('r1', $1, 'BMW', 1000, '{}', true)
         ON CONFLICT (inner_id) DO UPDATE SET price = EXCLUDED.price",
    )
    .bind(id)
    .execute(&mut normalizer)
    .await
    .unwrap();
    sqlx::query("UPDATE raw_data SET is_processed = true WHERE id = $1")
        .bind(id)
        .execute(&mut normalizer)
        .await
        .unwrap();
    denied(
        &mut normalizer,
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         VALUES ('x', 'added', now(), '{}', 'initial_load', 0)",
    )
    .await;
    denied(&mut normalizer, "SELECT * FROM api_tokens").await;
    denied(&mut normalizer, "DELETE FROM processed_data").await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_api_reads_the_catalogue_and_stats_and_touches_tokens_but_cannot_read_raw_data_or_write_the_catalogue(
    pool: PgPool,
) {
    raw_row(&pool).await;
    sqlx::query(
        "INSERT INTO processed_data (inner_id, raw_id, mark, price, record, is_active)
         VALUES ('r1', 1, 'BMW', 1000, '{}', true)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut api = as_role(&pool, "carfeed_api").await;
    let offers: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_data")
        .fetch_one(&mut api)
        .await
        .unwrap();
    assert_eq!(offers, 1);
    // /stats: counts through the owner's functions, the same numbers.
    let counts = db::stats::pipeline_counts(&mut api).await.unwrap();
    assert_eq!((counts.loaded, counts.normalized, counts.active), (1, 1, 1));
    let fleet = db::stats::fleet_counts(&mut api).await.unwrap();
    assert_eq!(fleet.len(), db::stats::FLEET_TABLES.len());
    db::stats::initial_load(&mut api).await.unwrap();
    db::operations::latest_per_type(&mut api).await.unwrap();
    // Tokens: issued (the first start's, `api tokens issue`), used, revoked.
    let token = db::tokens::NewToken {
        hash: [7; 32],
        prefix: "abcdefgh".into(),
    };
    let ids = db::tokens::insert(&mut api, &[token], "role test", None)
        .await
        .unwrap();
    assert_eq!(db::tokens::touch(&mut api, &ids).await.unwrap(), 1);
    assert!(db::tokens::revoke(&mut api, ids[0]).await.unwrap());

    denied(&mut api, "SELECT * FROM raw_data").await;
    denied(&mut api, "SELECT count(*) FROM raw_data").await;
    denied(&mut api, "UPDATE processed_data SET price = 1").await;
    denied(&mut api, "DELETE FROM processed_data").await;
    denied(&mut api, "UPDATE api_tokens SET token_hash = '\\x00'").await;
    denied(&mut api, "DELETE FROM api_tokens").await;
    denied(&mut api, "SELECT * FROM proxies").await;
    denied(&mut api, "SELECT * FROM rejected_items").await;
    denied(
        &mut api,
        "INSERT INTO operations_log (operation_type, status) VALUES ('x', 'OK')",
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_worker_runs_the_fleet_tables_but_cannot_touch_tokens_or_the_catalogue(pool: PgPool) {
    let mut worker = as_role(&pool, "carfeed_worker").await;
    db::workers::register(&mut worker, "role-test", 2, Duration::from_secs(60))
        .await
        .unwrap();
    db::tasks::insert_with_params(
        &mut worker,
        TaskKind::FetchUrl,
        &["https://example.com/".into()],
        &[serde_json::json!({})],
    )
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         VALUES ('w1', 'added', now(), '{}', 'initial_load', 0)",
    )
    .execute(&mut worker)
    .await
    .unwrap();
    denied(&mut worker, "SELECT * FROM api_tokens").await;
    denied(&mut worker, "UPDATE api_tokens SET revoked_at = now()").await;
    denied(&mut worker, "SELECT * FROM processed_data").await;
    denied(&mut worker, "UPDATE processed_data SET price = 1").await;
    denied(&mut worker, "SELECT * FROM sync_table_state").await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sync_reads_and_writes_the_catalogue_and_its_marks_but_no_raw_data_or_tokens(pool: PgPool) {
    let mut sync = as_role(&pool, "carfeed_sync").await;
    sqlx::query("SELECT * FROM processed_data")
        .execute(&mut sync)
        .await
        .unwrap();
    let id = db::sync_tables::database_id(&mut sync).await.unwrap();
    let marks = db::sync_tables::Marks {
        direction: db::sync_tables::Direction::Push,
        table: "processed_data",
        production_id: &id,
    };
    db::sync_tables::finish(&mut sync, marks, "100:100:")
        .await
        .unwrap();
    denied(&mut sync, "SELECT * FROM raw_data").await;
    denied(&mut sync, "SELECT * FROM api_tokens").await;
    denied(&mut sync, "SELECT * FROM proxies").await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn migrating_again_and_setting_passwords_is_idempotent(pool: PgPool) {
    // Roles survive the test databases (they belong to the server): a
    // second run of the role migration's body must be harmless.
    let body = include_str!("../../../migrations/0015_roles.sql");
    let create_roles = &body[..body.find("-- Nothing in this schema").unwrap()];
    let create_roles = &create_roles[create_roles.find("DO $$").unwrap()..];
    sqlx::raw_sql(create_roles).execute(&pool).await.unwrap();
    // A role of this test's own: the services' roles belong to every test
    // running on the server (the system test sets their passwords).
    let role = format!("roles_test_{}", std::process::id());
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&mut *conn)
        .await
        .unwrap();
    db::roles::set_password(&mut conn, &role, "it's a p@ss; DROP ROLE x")
        .await
        .unwrap();
    let has: bool =
        sqlx::query_scalar("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1")
            .bind(&role)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(has);
}
