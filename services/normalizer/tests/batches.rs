//! The normaliser against a real Postgres: what a batch writes, poison
//! records, rollback, idempotence, concurrency and the operations log.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use common::{count, insert, many, options, sample_page, Gate, Raw};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn drain(pool: &PgPool, batch_size: i64) -> anyhow::Result<normalizer::Summary> {
    normalizer::run_once(pool, &options(batch_size), &CancellationToken::new()).await
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_sample_page_normalises_into_typed_columns(pool: PgPool) {
    insert(&pool, &sample_page()).await;
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.errors),
        (3, 0, 0)
    );

    type Row = (
        Option<i64>,
        Option<i32>,
        Option<i32>,
        Option<f64>,
        Option<String>,
        Option<String>,
        Option<bool>,
        Option<NaiveDate>,
        Value,
        Option<String>,
        Option<i32>,
        bool,
    );
    let passat: Row = sqlx::query_as(
        "SELECT price, year, km_age, (record->>'displacement')::float8, city,
                record->>'district', is_dealer, (record->>'first_registration')::date,
                record->'images', record->>'car_name', (record->>'gears')::int, is_active
         FROM processed_data WHERE inner_id = '56234871'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(passat.0, Some(139_800));
    assert_eq!(passat.1, Some(2021));
    assert_eq!(passat.2, Some(46_000));
    assert_eq!(passat.3, Some(2.0));
    assert_eq!(passat.4.as_deref(), Some("北京"));
    assert_eq!(passat.5.as_deref(), Some("朝阳"));
    assert_eq!(passat.6, Some(true));
    assert_eq!(passat.7, NaiveDate::from_ymd_opt(2021, 6, 1));
    assert_eq!(
        passat.8.as_array().unwrap().len(),
        4,
        "images stored as a JSON array"
    );
    assert_eq!(passat.9.as_deref(), Some("帕萨特 2021款 330TSI 精英版"));
    assert_eq!(passat.10, Some(7));
    assert!(passat.11);

    let (record, listed_at): (Value, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT record, listed_at FROM processed_data WHERE inner_id = '56241190'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(record["fuel_type"], "纯电动");
    assert_eq!(record["engine_model"], Value::Null);
    assert_eq!(record["max_power_kw"], 380.0);
    assert!(
        record.get("extra").is_none(),
        "extra (seller phones) is never copied"
    );
    assert_eq!(
        listed_at.unwrap().to_rfc3339(),
        "2026-08-18T06:41:27.312+00:00"
    );

    assert_eq!(
        count(&pool, "SELECT count(*) FROM raw_data WHERE is_processed").await,
        3
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn removed_listings_are_kept_but_inactive(pool: PgPool) {
    let mut rows = sample_page();
    rows[1].active_status = 1;
    insert(&pool, &rows).await;
    drain(&pool, 200).await.unwrap();
    let inactive: Vec<String> =
        sqlx::query_scalar("SELECT inner_id FROM processed_data WHERE NOT is_active")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(inactive, vec!["56240517".to_owned()]);
    assert_eq!(count(&pool, "SELECT count(*) FROM processed_data").await, 3);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_removed_listing_with_null_data_still_gets_an_inactive_row(pool: PgPool) {
    insert(
        &pool,
        &[Raw {
            inner_id: "55730921".into(),
            data: Value::Null,
            active_status: 1,
        }],
    )
    .await;
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!(summary.created, 1);
    let active: bool =
        sqlx::query_scalar("SELECT is_active FROM processed_data WHERE inner_id = '55730921'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!active);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn renormalising_updates_in_place_and_is_idempotent(pool: PgPool) {
    insert(&pool, &sample_page()).await;
    drain(&pool, 200).await.unwrap();
    let before: Vec<(String, Value)> =
        sqlx::query_as("SELECT inner_id, record FROM processed_data ORDER BY inner_id")
            .fetch_all(&pool)
            .await
            .unwrap();

    sqlx::query("UPDATE raw_data SET is_processed = false")
        .execute(&pool)
        .await
        .unwrap();
    let again = drain(&pool, 200).await.unwrap();
    assert_eq!((again.created, again.updated), (0, 3));
    let after: Vec<(String, Value)> =
        sqlx::query_as("SELECT inner_id, record FROM processed_data ORDER BY inner_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(before, after);

    // A price change (the loader's merge) shows after re-normalising.
    sqlx::query("UPDATE raw_data SET data = data || '{\"price\": 136800}', is_processed = false WHERE inner_id = '56234871'")
        .execute(&pool)
        .await
        .unwrap();
    let changed = drain(&pool, 200).await.unwrap();
    assert_eq!((changed.created, changed.updated), (0, 1));
    assert_eq!(
        count(
            &pool,
            "SELECT price FROM processed_data WHERE inner_id = '56234871'"
        )
        .await,
        136_800
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_poison_record_among_199_good_ones_is_recorded_and_the_queue_drains(pool: PgPool) {
    let mut rows = many(200);
    rows[117].data["price"] = json!("call us");
    insert(&pool, &rows).await;

    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!(
        (summary.created, summary.errors, summary.batches),
        (199, 1, 1)
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        199
    );
    let (inner_id, processed, error, attempts): (String, bool, Option<String>, i32) = sqlx::query_as(
        "SELECT inner_id, is_processed, normalize_error, normalize_attempts FROM raw_data WHERE normalize_error IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(inner_id, "60000117");
    assert!(!processed);
    assert_eq!(
        error.as_deref(),
        Some("price: expected a number, got \"call us\"")
    );
    assert_eq!(attempts, 1);

    // The queue is drained: the poison record is not claimed again.
    let next = drain(&pool, 200).await.unwrap();
    assert_eq!((next.batches, next.errors), (0, 0));
    let status: Vec<(String, String)> = sqlx::query_as(
        "SELECT status, details FROM operations_log WHERE operation_type = 'normalization' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        status[0],
        (
            "ERROR".into(),
            "processed=199 created=199 updated=0 errors=1 batches=1".into()
        )
    );
    assert_eq!(
        status[1],
        (
            "OK".into(),
            "processed=0 created=0 updated=0 errors=0 batches=0".into()
        )
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_failed_record_is_claimed_again_once_the_loader_rewrites_it(pool: PgPool) {
    let mut rows = many(3);
    rows[0].data["year"] = json!("soon");
    insert(&pool, &rows).await;
    drain(&pool, 200).await.unwrap();
    // The loader's rewrite fixes the data and clears normalize_error.
    sqlx::query("UPDATE raw_data SET data = data || '{\"year\": \"2021\"}', normalize_error = NULL WHERE inner_id = '60000000'")
        .execute(&pool)
        .await
        .unwrap();
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!((summary.created, summary.errors), (1, 0));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM raw_data WHERE is_processed").await,
        3
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_infrastructure_error_rolls_back_the_whole_batch(pool: PgPool) {
    insert(&pool, &many(10)).await;
    // Not a refused value but a broken schema: the whole batch must roll back.
    sqlx::query("ALTER TABLE processed_data RENAME COLUMN record TO record_gone")
        .execute(&pool)
        .await
        .unwrap();
    let err = drain(&pool, 200).await.unwrap_err();
    assert!(format!("{err:#}").contains("processed_data"), "{err:#}");
    assert_eq!(count(&pool, "SELECT count(*) FROM processed_data").await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE is_processed OR normalize_error IS NOT NULL"
        )
        .await,
        0
    );
    let status: String = sqlx::query_scalar(
        "SELECT status FROM operations_log WHERE operation_type = 'normalization'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "ERROR");

    // Once the database is whole again, the same batch is redone.
    sqlx::query("ALTER TABLE processed_data RENAME COLUMN record_gone TO record")
        .execute(&pool)
        .await
        .unwrap();
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!(summary.created, 10);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_record_postgres_refuses_is_isolated_and_the_other_199_of_its_batch_commit(pool: PgPool) {
    insert(&pool, &many(200)).await;
    // Postgres is the only judge of this value: row 117's price.
    sqlx::query("ALTER TABLE processed_data ADD CONSTRAINT no_such_price CHECK (price <> 50819)")
        .execute(&pool)
        .await
        .unwrap();
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!(
        (summary.created, summary.errors, summary.batches),
        (199, 1, 1)
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        199
    );
    let (inner_id, error): (String, String) = sqlx::query_as(
        "SELECT inner_id, normalize_error FROM raw_data WHERE normalize_error IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(inner_id, "60000117");
    assert!(
        error.starts_with("Postgres refused it:") && error.contains("no_such_price"),
        "{error}"
    );
    // The queue behind it is not blocked: the next rows go through.
    insert(&pool, &[many(201).pop().unwrap()]).await;
    let next = drain(&pool, 200).await.unwrap();
    assert_eq!((next.created, next.errors), (1, 0));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn rows_whose_data_rust_cannot_decode_get_an_error_and_their_batch_commits(pool: PgPool) {
    insert(&pool, &many(10)).await;
    // Postgres stores both happily; serde_json refuses both.
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, data, source) VALUES
         ('huge', 'added', '{\"price\": 1e400}', 'initial_load'),
         ('deep', 'added', jsonb_build_object('images', $1::jsonb), 'initial_load')",
    )
    .bind(&nested)
    .execute(&pool)
    .await
    .unwrap();
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!((summary.created, summary.errors), (10, 2));
    let errors: Vec<(String, String)> = sqlx::query_as(
        "SELECT inner_id, normalize_error FROM raw_data WHERE normalize_error IS NOT NULL ORDER BY inner_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(errors[0].0, "deep");
    assert!(errors[0].1.contains("recursion limit"), "{errors:?}");
    assert_eq!(errors[1].0, "huge");
    assert!(errors[1].1.contains("number out of range"), "{errors:?}");
    assert!(
        errors[1].1.starts_with("data is not readable JSON"),
        "{errors:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn requeue_puts_failed_rows_back_with_their_error_cleared(pool: PgPool) {
    let mut rows = many(5);
    rows[1].data["year"] = json!("soon");
    rows[3].data["year"] = json!("later");
    insert(&pool, &rows).await;
    drain(&pool, 200).await.unwrap();
    // A rules fix, played here by fixing the data in place (no loader rewrite).
    sqlx::query(
        "UPDATE raw_data SET data = data || '{\"year\": \"2021\"}' WHERE inner_id = '60000001'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let only_one = db::queue::Requeue {
        errors_only: true,
        inner_ids: vec!["60000001".into()],
    };
    assert_eq!(normalizer::requeue(&pool, &only_one).await.unwrap(), 1);
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!((summary.created, summary.errors), (1, 0));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE normalize_error IS NOT NULL"
        )
        .await,
        1,
        "the other failed row stays out of the queue"
    );

    let errors = db::queue::Requeue {
        errors_only: true,
        inner_ids: vec![],
    };
    assert_eq!(normalizer::requeue(&pool, &errors).await.unwrap(), 1);
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!((summary.created, summary.errors), (0, 1));

    // Without filters every row goes back and is normalised again.
    let all = db::queue::Requeue::default();
    assert_eq!(normalizer::requeue(&pool, &all).await.unwrap(), 5);
    let summary = drain(&pool, 200).await.unwrap();
    assert_eq!((summary.updated, summary.errors), (4, 1));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn batches_hold_at_most_batch_size_rows_and_max_batches_stops_early(pool: PgPool) {
    insert(&pool, &many(25)).await;
    let mut opts = options(10);
    opts.max_batches = Some(2);
    let summary = normalizer::run_once(&pool, &opts, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((summary.batches, summary.created), (2, 20));
    let rest = drain(&pool, 10).await.unwrap();
    assert_eq!((rest.batches, rest.created), (1, 5));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn three_normalisers_at_once_normalise_every_row_exactly_once(pool: PgPool) {
    insert(&pool, &many(10_000)).await;
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { drain(&pool, 200).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    let mut updated = 0;
    for worker in workers {
        let summary = worker.await.unwrap();
        created += summary.created;
        updated += summary.updated;
    }
    assert_eq!((created, updated), (10_000, 0), "no row written twice");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        10_000
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM processed_data WHERE updated_at <> created_at"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE NOT is_processed"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_row_requeued_behind_a_running_drain_is_normalised_before_the_drain_ends(pool: PgPool) {
    let rows = many(400);
    let first = rows[0].inner_id.clone();
    insert(&pool, &rows).await;
    // Batch 6 (rows 51-60) is held at a gate: the drain is past the first
    // row and cannot end until the test lets it go.
    let gate = Gate::close(&pool, &rows[54].inner_id).await;
    let drain = {
        let pool = pool.clone();
        let options = options(10);
        tokio::spawn(async move {
            normalizer::run_once(&pool, &options, &CancellationToken::new()).await
        })
    };
    gate.wait_for_a_batch(&pool).await;
    // The loader rewrites the first row, behind the drain's position.
    let done = "SELECT count(*) FROM raw_data WHERE is_processed";
    assert_eq!(count(&pool, done).await, 50, "five batches committed");
    sqlx::query(
        "UPDATE raw_data SET data = data || '{\"price\": \"123456\"}', is_processed = false
          WHERE inner_id = $1",
    )
    .bind(&first)
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        count(&pool, done).await < 399,
        "the drain ended before the row went back into the queue: inconclusive"
    );
    gate.open().await;
    let summary = drain.await.unwrap().unwrap();
    assert_eq!((summary.created, summary.updated), (400, 1));
    assert_eq!(
        count(
            &pool,
            &format!("SELECT price FROM processed_data WHERE inner_id = '{first}'")
        )
        .await,
        123_456
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE NOT is_processed"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_normalises_rows_when_the_loader_notifies(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let server = {
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        let mut opts = options(200);
        opts.log_idle_runs = false;
        // An hour's poll: only the NOTIFY can wake it in time.
        tokio::spawn(async move {
            normalizer::serve(&pool, &opts, Duration::from_secs(3600), shutdown).await
        })
    };
    // Let it reach its LISTEN, then write rows and notify as the loader does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    insert(&pool, &sample_page()).await;
    db::queue::notify(&pool).await.unwrap();
    common::wait_for_count(
        &pool,
        "SELECT count(*) FROM processed_data",
        3,
        Duration::from_secs(10),
    )
    .await;
    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM operations_log").await,
        1,
        "idle wake-ups are not logged"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_finds_rows_by_polling_without_a_notify(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let server = {
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        let opts = options(200);
        tokio::spawn(async move {
            normalizer::serve(&pool, &opts, Duration::from_millis(100), shutdown).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    insert(&pool, &sample_page()).await;
    common::wait_for_count(
        &pool,
        "SELECT count(*) FROM processed_data",
        3,
        Duration::from_secs(10),
    )
    .await;
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
