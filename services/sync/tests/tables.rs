//! dry-run, --prune, composite keys, pull and verify over two real databases.

mod common;

use common::{contents, count, insert_processed, options, push, run, tuples_written, Production};
use db::sync_tables::Direction;
use settings::SyncTable;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const REF_TABLE: &str = "CREATE TABLE ref_prices (
    mark text, year integer, price bigint, note jsonb,
    PRIMARY KEY (mark, year)
); SELECT sync_track('ref_prices');";

fn ref_table() -> Vec<SyncTable> {
    vec![SyncTable {
        name: "ref_prices".into(),
        key: vec!["mark".into(), "year".into()],
    }]
}

async fn insert_ref(pool: &PgPool, marks: &[&str], years: std::ops::Range<i32>) {
    sqlx::query(
        "INSERT INTO ref_prices (mark, year, price, note)
         SELECT m, y, y * 10, jsonb_build_object('m', m)
         FROM unnest($1::text[]) AS m, generate_series($2, $3) AS y",
    )
    .bind(marks)
    .bind(years.start)
    .bind(years.end - 1)
    .execute(pool)
    .await
    .unwrap();
}

async fn state_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT to_jsonb(s)::text FROM sync_table_state s ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_dry_run_counts_inserts_updates_and_deletes_and_writes_nothing_state_included(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 300).await;
    push(&working, &production, &options(100)).await;
    insert_processed(&working, 300, 7).await;
    sqlx::query("UPDATE processed_data SET price = 5 WHERE inner_id IN ('k000001', 'k000002')")
        .execute(&working)
        .await
        .unwrap();
    sqlx::query("DELETE FROM processed_data WHERE inner_id IN ('k000010', 'k000011', 'k000012')")
        .execute(&working)
        .await
        .unwrap();
    let written = tuples_written(&production.pool, "processed_data").await;
    let state = state_rows(&working).await;
    let before = contents(&production.pool, "processed_data", "inner_id").await;

    let mut dry = options(100);
    dry.dry_run = true;
    dry.prune = true;
    let report = push(&working, &production, &dry).await;
    assert_eq!((report.inserted, report.updated, report.deleted), (7, 2, 3));
    assert_eq!(
        tuples_written(&production.pool, "processed_data").await,
        written
    );
    assert_eq!(state_rows(&working).await, state);
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        before
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn prune_deletes_target_rows_gone_from_the_source_and_is_off_by_default(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 50).await;
    push(&working, &production, &options(20)).await;
    sqlx::query("DELETE FROM processed_data WHERE inner_id < 'k000005'")
        .execute(&working)
        .await
        .unwrap();
    let plain = push(&working, &production, &options(20)).await;
    assert_eq!(plain.deleted, 0);
    assert_eq!(
        count(&production.pool, "SELECT count(*) FROM processed_data").await,
        50
    );
    let mut prune = options(20);
    prune.prune = true;
    let pruned = push(&working, &production, &prune).await;
    assert_eq!(pruned.deleted, 5);
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_reference_table_with_a_composite_key_is_pulled_incrementally_and_resumes_by_key(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    for pool in [&working, &production.pool] {
        sqlx::raw_sql(REF_TABLE).execute(pool).await.unwrap();
    }
    insert_ref(&production.pool, &["Audi", "BMW", "Ford"], 2000..2010).await;
    let first = run(
        Direction::Pull,
        &working,
        &production,
        &ref_table(),
        &options(7),
    )
    .await
    .unwrap();
    assert_eq!((first[0].inserted, first[0].batches), (30, 5));
    sqlx::query("UPDATE ref_prices SET price = 1 WHERE mark = 'BMW' AND year = 2004")
        .execute(&production.pool)
        .await
        .unwrap();
    insert_ref(&production.pool, &["Audi"], 2010..2012).await;
    let second = run(
        Direction::Pull,
        &working,
        &production,
        &ref_table(),
        &options(7),
    )
    .await
    .unwrap();
    assert_eq!(
        (second[0].read, second[0].inserted, second[0].updated),
        (3, 2, 1)
    );
    assert_eq!(
        contents(&working, "ref_prices", "mark, year").await,
        contents(&production.pool, "ref_prices", "mark, year").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn verify_names_one_deleted_one_altered_and_one_extra_row_per_table(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    for pool in [&working, &production.pool] {
        sqlx::raw_sql(REF_TABLE).execute(pool).await.unwrap();
    }
    insert_processed(&working, 0, 500).await;
    insert_ref(&working, &["Audi", "BMW"], 2000..2020).await;
    let mut tables = common::processed_table();
    tables.extend(ref_table());
    run(
        Direction::Push,
        &working,
        &production,
        &tables,
        &options(100),
    )
    .await
    .unwrap();
    let same = sync::job::verify(&working, &production.pool, &tables, Some(&working))
        .await
        .unwrap();
    assert_eq!(same.iter().filter(|c| !c.matches()).count(), 0);

    sqlx::raw_sql(
        "DELETE FROM processed_data WHERE inner_id = 'k000100';
         UPDATE processed_data SET record = '{\"x\": 1}' WHERE inner_id = 'k000200';
         INSERT INTO processed_data (inner_id, raw_id, record) VALUES ('zzz', 1, '{}');
         DELETE FROM ref_prices WHERE mark = 'Audi' AND year = 2001;
         UPDATE ref_prices SET note = NULL WHERE mark = 'BMW' AND year = 2002;
         INSERT INTO ref_prices VALUES ('Ford', 1999, 1, NULL);",
    )
    .execute(&production.pool)
    .await
    .unwrap();
    let mut a = working.acquire().await.unwrap();
    let mut b = production.pool.acquire().await.unwrap();
    let check = sync::verify::check_table(&mut a, &mut b, "processed_data", None)
        .await
        .unwrap();
    assert!(!check.matches());
    assert_eq!(check.sample, ["(k000100)", "(k000200)", "(zzz)"]);
    let key = ["mark".to_owned(), "year".to_owned()];
    let check = sync::verify::check_table(&mut a, &mut b, "ref_prices", Some(&key))
        .await
        .unwrap();
    assert_eq!(check.sample, ["(Audi,2001)", "(BMW,2002)", "(Ford,1999)"]);
    drop((a, b));
    let differing = sync::job::verify(&working, &production.pool, &tables, Some(&working))
        .await
        .unwrap();
    assert_eq!(differing.iter().filter(|c| !c.matches()).count(), 2);
    let details: String = sqlx::query_scalar(
        "SELECT details FROM operations_log WHERE operation_type = 'sync_verify' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&working)
    .await
    .unwrap();
    assert!(details.starts_with("tables=2 differing=2"), "{details}");
    production.drop_database().await;
}
